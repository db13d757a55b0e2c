"""``matches`` filters are RE2 patterns: one RE2 cannot run in linear time (a backreference,
look-around) or that is too long is a ``file:line`` error at ``sequences check``."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sequencer.app.cli import app

pytestmark = pytest.mark.unit

SEQUENCE = """\
name: patterned
trigger:
  signals: [intent_surge]
  filters:
    signal.topic: {in: [crm]}
    title: {matches: PATTERN}
steps:
  - kind: wait
    hours: 1
"""


def check(tmp_path: Path, pattern: str) -> tuple[int, str, Path]:
    (tmp_path / "sequences").mkdir()
    (tmp_path / "steps").mkdir()
    path = tmp_path / "sequences" / "patterned.yaml"
    path.write_text(SEQUENCE.replace("PATTERN", pattern))
    result = CliRunner().invoke(app, ["sequences", "check", str(tmp_path)])
    return result.exit_code, result.output, path


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"'(\w)\1'", "invalid escape sequence: \\1"),
        ("'(?=vp)'", "invalid perl operator: (?="),
        ("'(?<!head )of'", "invalid perl operator: (?<"),
        (r"'end\Z'", "invalid escape sequence: \\Z"),
        ("'a{2000}'", "invalid repetition size: {2000}"),
        ("'" + "a" * 1001 + "'", "the pattern is 1001 characters long (the limit is 1000)"),
    ],
    ids=["backreference", "lookahead", "lookbehind", "python-Z", "huge-repeat", "too-long"],
)
def test_a_pattern_re2_refuses_is_a_file_line_error(tmp_path: Path, pattern: str, reason: str) -> None:
    code, output, path = check(tmp_path, pattern)

    assert code == 1
    assert f"{path}:6: bad regular expression for 'title': {reason}" in output, output
    assert "RE2 syntax" in output or "limit" in output


def test_a_pattern_that_backtracks_in_python_is_accepted_since_re2_runs_it_in_linear_time(tmp_path: Path) -> None:
    code, output, _ = check(tmp_path, "'^(a+)+$'")

    assert code == 0, output
