"""Hostile YAML: sequence and rules files that would cost gigabytes, recurse or run code are
refused with ``file:line``, through ``sequences check`` and ``rules check``."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from sequencer.app.cli import app

pytestmark = pytest.mark.unit

# The classic "billion laughs": 342 bytes that expand to 9**9 (387 million) strings.
BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""
# Five levels: 66 thousand values, small enough that reading it used to succeed (slowly).
FEW_LAUGHS = "\n".join(BILLION_LAUGHS.splitlines()[:5]) + "\n"
DEEP = "name: deep\nsteps: " + "[" * 200 + "]" * 200 + "\n"
RECURSIVE = "name: loop\nsteps: &s [kind, *s]\n"
PYTHON_TAG = 'name: boom\nsteps: !!python/object/apply:os.system ["echo pwned"]\n'
DUPLICATE = """\
name: first
steps:
  - kind: wait
    hours: 1
name: second
"""


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def write_sequence(tmp_path: Path, text: str) -> Path:
    (tmp_path / "sequences").mkdir()
    (tmp_path / "steps").mkdir()
    path = tmp_path / "sequences" / "hostile.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (BILLION_LAUGHS, 5, "YAML refused: the document expands to more than 20000 values"),
        (FEW_LAUGHS, 5, "YAML refused: the document expands to more than 20000 values"),
        (DEEP, 2, "YAML refused: nested more than 50 levels deep"),
        (RECURSIVE, 2, "YAML refused: alias *s refers to a value that contains it"),
        (PYTHON_TAG, 2, "tag !!python/object/apply:os.system is not allowed"),
        (DUPLICATE, 5, "duplicate key 'name' (first at line 1)"),
    ],
    ids=["billion-laughs", "few-laughs", "deep", "recursive", "python-tag", "duplicate-key"],
)
def test_sequences_check_refuses_a_hostile_file_at_its_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = write_sequence(tmp_path, text)
    result = cli("sequences", "check", str(tmp_path))
    assert result.exit_code == 1, result.output
    assert f"{path}:{line}: {message}" in result.output


def test_a_python_tag_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    write_sequence(tmp_path, f'name: boom\nsteps: !!python/object/apply:os.system ["touch {marker}"]\n')
    assert cli("sequences", "check", str(tmp_path)).exit_code == 1
    assert not marker.exists()


def test_an_oversized_sequence_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = write_sequence(tmp_path, "name: big\n" + "# padding\n" * 120_000)
    result = cli("sequences", "check", str(tmp_path))
    assert result.exit_code == 1
    assert f"{path}:1: cannot read file: " in result.output and "over the limit of 1048576" in result.output


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (BILLION_LAUGHS, 5, "YAML refused: the document expands to more than 20000 values"),
        ("defaults:\n  reply: " + "[" * 100 + "]" * 100 + "\n", 2, "YAML refused: nested more than 50 levels"),
        ("defaults: &d {reply: [stop], again: *d}\n", 1, "YAML refused: alias *d refers to a value that contains"),
    ],
    ids=["billion-laughs", "deep", "recursive"],
)
def test_rules_check_refuses_a_hostile_file_at_its_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    result = cli("rules", "check", str(path))
    assert result.exit_code == 1
    assert f"{path}:{line}: {message}" in result.output


def test_a_sequence_with_a_few_plain_aliases_still_loads(tmp_path: Path) -> None:
    write_sequence(tmp_path, """\
name: aliased
window: &w {days: mon-fri, start: "08:00", end: "17:00"}
trigger:
  signals: [intent_surge]
steps:
  - &wait {kind: wait, hours: 4}
  - *wait
""")
    result = cli("sequences", "check", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "ok aliased: 2 steps (wait, wait)" in result.output
