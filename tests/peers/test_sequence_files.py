"""Sequence files: the shipped set validates, every kind of bad input names its file:line,
and syncing stores immutable versions."""

from __future__ import annotations

import shutil
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from sequencer.core.clock import SimulatedClock
from sequencer.core.config import REPO_TEMPLATES
from sequencer.core.models import SequenceVersion
from sequencer.core.yaml_source import SourceError
from sequencer.sequences import versions as sequences
from sequencer.sequences.files import load_sequence
from sequencer.sequences.triggers import SIGNAL_TYPES

GOOD = """\
name: probe
description: a small valid sequence
trigger:
  signals: [form_fill]
  filters:
    signal.form: {in: [demo-request]}
steps:
  - id: hello
    kind: email
    subject: "Hi {{ prospect.first_name }}"
    template: hello.txt.j2
  - kind: wait
    business_days: 2
  - id: bump
    kind: email
    template: hello.txt.j2
"""
HELLO = "Hi {{ prospect.first_name }},\n\nquick question.\n\n{{ sender.name }}\n"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An empty templates root with one good step template."""
    (tmp_path / "sequences").mkdir()
    (tmp_path / "steps").mkdir()
    (tmp_path / "steps" / "hello.txt.j2").write_text(HELLO)
    return tmp_path


def write(root: Path, text: str, name: str = "probe.yaml") -> Path:
    path = root / "sequences" / name
    path.write_text(textwrap.dedent(text))
    return path


def line_of(path: Path, marker: str, occurrence: int = 1) -> int:
    """The 1-based line of the ``occurrence``-th line of ``path`` containing ``marker``."""
    hits = [n for n, line in enumerate(path.read_text().splitlines(), 1) if marker in line]
    return hits[occurrence - 1]


def errors_of(root: Path) -> list[str]:
    definitions, errors = sequences.check_files(root)
    assert errors, "expected the files to be refused"
    assert definitions == [] or all(d["name"] != "probe" for d in definitions)
    return errors


def only_error(root: Path) -> str:
    errors = errors_of(root)
    assert len(errors) == 1, errors
    return errors[0]


# --- the shipped examples -------------------------------------------------------------


def test_shipped_templates_validate() -> None:
    definitions, errors = sequences.check_files(REPO_TEMPLATES)

    assert errors == []
    assert sorted(d["name"] for d in definitions) == ["funding-round", "inbound-form", "job-change"]


def test_definition_freezes_every_template_source(root: Path) -> None:
    path = write(root, GOOD)

    definition = load_sequence(path)

    assert definition["templates"] == {"hello.txt.j2": HELLO}
    assert [s["kind"] for s in definition["steps"]] == ["email", "wait", "email"]
    assert definition["steps"][1]["wait"] == {"business_days": 2}
    assert definition["trigger"]["cooldown_days"] == 90
    assert definition["window"] == {"days": ["mon", "tue", "wed", "thu", "fri"],
                                    "start": "08:00", "end": "17:00"}


def test_included_templates_are_frozen_too(root: Path) -> None:
    (root / "steps" / "footer.txt.j2").write_text("-- {{ sender.name }}")
    (root / "steps" / "hello.txt.j2").write_text("Hi\n{% include 'footer.txt.j2' %}")
    path = write(root, GOOD)

    assert set(load_sequence(path)["templates"]) == {"hello.txt.j2", "footer.txt.j2"}


# --- one error per kind of bad input, each with its exact file:line --------------------


def test_unknown_step_kind(root: Path) -> None:
    path = write(root, GOOD.replace("kind: wait", "kind: fax"))

    error = only_error(root)

    assert error.startswith(f"{path}:{line_of(path, 'kind: fax')}: unknown step kind 'fax'")


@pytest.mark.parametrize(
    ("wait", "marker", "message"),
    [
        ("business_days: -1", "business_days: -1", "bad wait business_days: -1"),
        ("business_days: 0", "business_days: 0", "bad wait business_days: 0"),
        ("hours: soon", "hours: soon", "bad wait hours: 'soon'"),
        ("business_days: 1.5", "business_days: 1.5", "business_days must be a whole number"),
    ],
)
def test_bad_wait_value(root: Path, wait: str, marker: str, message: str) -> None:
    path = write(root, GOOD.replace("business_days: 2", wait))

    error = only_error(root)

    assert error.startswith(f"{path}:{line_of(path, marker)}: {message}")


def test_bad_wait_unit(root: Path) -> None:
    path = write(root, GOOD.replace("business_days: 2", "fortnights: 2"))

    errors = errors_of(root)

    unit_line = line_of(path, "fortnights")
    assert f"{path}:{unit_line}: unknown step key 'fortnights'" in errors
    assert f"{path}:{line_of(path, 'kind: wait')}: a wait needs exactly one of hours, days, business_days" in errors


def test_wait_for_signal_needs_known_signal_and_timeout(root: Path) -> None:
    path = write(root, GOOD.replace("kind: wait\n    business_days: 2",
                                    "kind: wait_for_signal\n    signal: telepathy"))

    errors = errors_of(root)

    assert errors == [
        (f"{path}:{line_of(path, 'signal: telepathy')}: unknown signal type 'telepathy' (known: "
         f"{', '.join(sorted(SIGNAL_TYPES))}; declare your own in sequencer.toml [signals] types or signals.yaml)"),
        (f"{path}:{line_of(path, 'kind: wait_for_signal')}: wait_for_signal needs a timeout, "
         "e.g. {business_days: 5}"),
    ]


def test_unknown_template(root: Path) -> None:
    path = write(root, GOOD.replace("template: hello.txt.j2\n  - kind", "template: nope.txt.j2\n  - kind"))

    error = only_error(root)

    assert error.startswith(f"{path}:{line_of(path, 'nope.txt.j2')}: unknown template 'nope.txt.j2'")


def test_template_outside_the_steps_folder_is_refused(root: Path) -> None:
    path = write(root, GOOD.replace("template: hello.txt.j2\n  - kind", "template: ../sequences/probe.yaml\n  - kind"))

    error = only_error(root)

    assert error.startswith(f"{path}:{line_of(path, '../sequences')}: template '../sequences/probe.yaml' is outside")


def test_template_syntax_error_names_the_template_file_and_its_line(root: Path) -> None:
    broken = root / "steps" / "hello.txt.j2"
    broken.write_text("Hi {{ prospect.first_name }},\n\nabout {{ account.name }\nthanks\n")
    write(root, GOOD)

    error = only_error(root)

    assert error.startswith(f"{broken}:3: template syntax error: ")


def test_unclosed_block_points_at_the_block(root: Path) -> None:
    broken = root / "steps" / "hello.txt.j2"
    broken.write_text("Hi {{ prospect.first_name }},\n\n{% if prospect.title %}\nno end\n")
    write(root, GOOD)

    error = only_error(root)

    assert error.startswith(f"{broken}:3: template syntax error: ")
    assert "endif" in error


def test_undefined_top_level_variable_names_the_template_line(root: Path) -> None:
    template = root / "steps" / "hello.txt.j2"
    template.write_text("Hi there,\n\nour customer said so.\n{{ customer.name }} says hi\n")
    write(root, GOOD)

    error = only_error(root)

    assert error.startswith(f"{template}:4: undefined variable 'customer'")


def test_undefined_variable_in_subject_names_the_subject_line(root: Path) -> None:
    path = write(root, GOOD.replace("Hi {{ prospect.first_name }}", "Hi {{ firstname }}"))

    error = only_error(root)

    assert error.startswith(f"{path}:{line_of(path, 'subject:')}: subject: undefined variable 'firstname'")


def test_unknown_signal_type_in_trigger(root: Path) -> None:
    path = write(root, GOOD.replace("signals: [form_fill]", "signals:\n    - form_fill\n    - rumour"))

    error = only_error(root)

    assert error.startswith(f"{path}:{line_of(path, '- rumour')}: unknown signal type 'rumour' (known: ")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{resembles: demo}", "unknown filter operator 'resembles' on 'signal.form'"),
        ("{matches: '(unclosed'}", "bad regular expression for 'signal.form'"),
        ("{between: [10]}", "'between' on 'signal.form' needs two numbers"),
        ("{between: [a, b]}", "'between' on 'signal.form' needs two numbers"),
        ("{between: [500, 50]}", "'between' on 'signal.form' needs the lower bound first"),
        ("{at_least: many}", "'at_least' on 'signal.form' needs a number"),
        ("{in: demo-request}", "'in' on 'signal.form' needs a list"),
        ("{equals: a, in: [b]}", "filter 'signal.form' needs exactly one operator"),
    ],
)
def test_bad_filter(root: Path, spec: str, message: str) -> None:
    path = write(root, GOOD.replace("{in: [demo-request]}", spec))

    error = only_error(root)

    assert error.startswith(f"{path}:{line_of(path, 'signal.form:')}: {message}")


def test_bad_filter_field(root: Path) -> None:
    path = write(root, GOOD.replace("signal.form:", "signal..form:"))

    assert only_error(root).startswith(f"{path}:{line_of(path, 'signal..form')}: bad filter field")


@pytest.mark.parametrize(("weight", "marker"), [("0", "weight: 0"), ("-2", "weight: -2"),
                                               ("heavy", "weight: heavy"), ("true", "weight: true")])
def test_variant_with_bad_weight(root: Path, weight: str, marker: str) -> None:
    path = write(root, GOOD.replace(
        '    subject: "Hi {{ prospect.first_name }}"\n    template: hello.txt.j2\n',
        "    subject: Hello\n    variants:\n"
        "      - {name: A, weight: 1, template: hello.txt.j2}\n"
        f"      - name: B\n        weight: {weight}\n        template: hello.txt.j2\n",
    ))

    error = only_error(root)

    assert error == f"{path}:{line_of(path, marker)}: weight must be a positive number"


def test_variant_without_template(root: Path) -> None:
    path = write(root, GOOD.replace(
        "    template: hello.txt.j2\n  - kind",
        "    variants:\n      - {name: A, weight: 1, template: hello.txt.j2}\n"
        "      - {name: B, weight: 1}\n  - kind",
    ))

    error = only_error(root)

    assert error == f"{path}:{line_of(path, 'name: B')}: a variant needs name, weight and template"


def test_variants_only_on_email_steps(root: Path) -> None:
    path = write(root, GOOD.replace(
        "  - kind: wait\n",
        "  - kind: call\n    variants:\n      - {template: hello.txt.j2}\n  - kind: wait\n",
    ))

    errors = errors_of(root)

    assert errors[0] == f"{path}:{line_of(path, 'variants:')}: only email steps have variants"


def test_first_email_without_subject(root: Path) -> None:
    path = write(root, GOOD.replace('    subject: "Hi {{ prospect.first_name }}"\n', ""))

    error = only_error(root)

    assert error == f"{path}:{line_of(path, 'id: hello')}: the first email of a thread needs a subject"


def test_new_thread_email_without_subject(root: Path) -> None:
    path = write(root, GOOD.replace("    template: hello.txt.j2\n", "    template: hello.txt.j2\n", 1)
                 .replace("id: bump\n", "id: bump\n    new_thread: true\n"))

    error = only_error(root)

    assert error == f"{path}:{line_of(path, 'id: bump')}: the first email of a thread needs a subject"


def test_email_without_template(root: Path) -> None:
    path = write(root, GOOD + "  - id: empty\n    kind: email\n")

    assert only_error(root) == f"{path}:{line_of(path, 'id: empty')}: an email step needs a template"


@pytest.mark.parametrize(
    ("old", "new", "marker", "message"),
    [
        ("description:", "colour: blue\ndescription:", "colour:", "unknown key 'colour'"),
        ("  signals:", "  urgency: high\n  signals:", "urgency:", "unknown trigger key 'urgency'"),
        ("    business_days: 2\n", "    business_days: 2\n    jitter: 3\n", "jitter:",
         "unknown step key 'jitter'"),
    ],
)
def test_unknown_keys(root: Path, old: str, new: str, marker: str, message: str) -> None:
    path = write(root, GOOD.replace(old, new, 1))

    assert only_error(root) == f"{path}:{line_of(path, marker)}: {message}"


def test_duplicate_step_id(root: Path) -> None:
    path = write(root, GOOD.replace("id: bump", "id: hello"))

    assert only_error(root) == f"{path}:{line_of(path, 'id: hello', 2)}: duplicate step id 'hello'"


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ("window: {days: mon-fri, start: '18:00', end: '09:00'}", "window end 09:00 must be after start 18:00"),
        ("window: {days: mon-funday}", "unknown day range 'mon-funday'"),
        ("window: {start: '25:00'}", "bad time '25:00'"),
        ("window: weekdays", "bad window"),
    ],
)
def test_bad_window(root: Path, window: str, message: str) -> None:
    path = write(root, GOOD.replace("steps:", f"{window}\nsteps:"))

    error = only_error(root)

    assert error.startswith(f"{path}:{line_of(path, 'window:')}: bad window")
    assert message in error


def test_yaml_syntax_error_names_its_line(root: Path) -> None:
    path = write(root, GOOD.replace("  - kind: wait\n", "  - kind: wait\n   business_days: [2\n"))

    error = only_error(root)

    assert error.startswith(f"{path}:")
    line = int(error.split(":")[1])
    assert line in (line_of(path, "business_days: [2"), line_of(path, "business_days: [2") + 1)
    assert "YAML syntax error" in error


def test_yaml_syntax_error_on_a_bad_indent(root: Path) -> None:
    path = write(root, "name: probe\nsteps:\n  - kind: email\n template: x\n")

    assert only_error(root).startswith(f"{path}:4: YAML syntax error: ")


def test_a_file_that_is_not_a_mapping(root: Path) -> None:
    path = write(root, "- just\n- a list\n")

    assert only_error(root) == f"{path}:1: a sequence file must be a mapping with name and steps"


def test_missing_name_and_steps(root: Path) -> None:
    path = write(root, "description: nothing here\n")

    assert errors_of(root) == [f"{path}:1: 'name' is required", f"{path}:1: 'steps' must be a non-empty list"]


def test_duplicate_sequence_names_across_files(root: Path) -> None:
    write(root, GOOD, "a.yaml")
    second = write(root, "# the same name again\n\n" + GOOD, "b.yaml")

    definitions, errors = sequences.check_files(root)

    assert [d["name"] for d in definitions] == ["probe"]
    assert errors == [
        (f"{second}:{line_of(second, 'name: probe')}: sequence name 'probe' is also used by "
         f"{root / 'sequences' / 'a.yaml'}")
    ]


def test_no_sequence_files(tmp_path: Path) -> None:
    _, errors = sequences.check_files(tmp_path)

    assert errors == [f"{tmp_path}:1: no sequence files (*.yaml) found"]


def test_many_errors_are_reported_together(root: Path) -> None:
    first = write(root, GOOD.replace("kind: wait", "kind: fax").replace("[form_fill]", "[rumour]"), "a.yaml")
    second = write(root, GOOD.replace("name: probe", "name: other").replace("hello.txt.j2\n  - kind",
                                                                             "gone.txt.j2\n  - kind"), "b.yaml")

    errors = errors_of(root)

    assert len(errors) == 3
    assert errors[0].startswith(f"{first}:{line_of(first, 'rumour')}: unknown signal type 'rumour'")
    assert errors[1].startswith(f"{first}:{line_of(first, 'kind: fax')}: unknown step kind 'fax'")
    assert errors[2].startswith(f"{second}:{line_of(second, 'gone.txt.j2')}: unknown template 'gone.txt.j2'")


def test_load_sequence_raises_with_every_error(root: Path) -> None:
    path = write(root, GOOD.replace("kind: wait", "kind: fax").replace("[form_fill]", "[rumour]"))

    with pytest.raises(SourceError) as raised:
        load_sequence(path)

    assert len(raised.value.errors) == 2
    assert str(raised.value) == "\n".join(raised.value.errors)


# --- versioning -----------------------------------------------------------------------


def versions(session: Session, name: str) -> list[SequenceVersion]:
    return list(session.exec(
        select(SequenceVersion).where(SequenceVersion.name == name).order_by(SequenceVersion.version)
    ))


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    copy = tmp_path / "templates"
    shutil.copytree(REPO_TEMPLATES, copy)
    return copy


def test_sync_twice_keeps_the_same_version(session: Session, clock: SimulatedClock, templates: Path) -> None:
    first = sequences.sync(session, clock.now(), templates)
    clock.advance(timedelta(hours=1))

    second = sequences.sync(session, clock.now(), templates)

    assert {(r.name, r.version, r.changed) for r in first} == {
        ("funding-round", 1, True), ("inbound-form", 1, True), ("job-change", 1, True)}
    assert {(r.name, r.version, r.changed) for r in second} == {
        ("funding-round", 1, False), ("inbound-form", 1, False), ("job-change", 1, False)}
    assert len(session.exec(select(SequenceVersion)).all()) == 3


def test_editing_a_template_adds_a_version_and_keeps_the_old_one(
    session: Session, clock: SimulatedClock, templates: Path
) -> None:
    sequences.sync(session, clock.now(), templates)
    bump = templates / "steps" / "funding" / "bump.txt.j2"
    old_text = bump.read_text()
    bump.write_text("Hi {{ prospect.first_name }}, a shorter bump.\n")
    clock.advance(timedelta(days=1))

    results = {r.name: r for r in sequences.sync(session, clock.now(), templates)}

    assert (results["funding-round"].version, results["funding-round"].changed) == (2, True)
    assert results["inbound-form"].changed is False
    session.expire_all()
    old, new = versions(session, "funding-round")
    assert (old.version, old.is_current, new.version, new.is_current) == (1, False, 2, True)
    assert old.definition["templates"]["funding/bump.txt.j2"] == old_text
    assert new.definition["templates"]["funding/bump.txt.j2"] == "Hi {{ prospect.first_name }}, a shorter bump.\n"
    assert old.content_hash != new.content_hash
    assert old.created_at < new.created_at
    assert sequences.current_version(session, "funding-round").id == new.id
    assert [v.name for v in sequences.current_versions(session)] == ["funding-round", "inbound-form", "job-change"]


def test_a_broken_file_refuses_the_whole_sync(session: Session, clock: SimulatedClock, templates: Path) -> None:
    sequences.sync(session, clock.now(), templates)
    (templates / "steps" / "funding" / "bump.txt.j2").write_text("changed {{ prospect.first_name }}")
    (templates / "sequences" / "job-change.yaml").write_text("name: job-change\nsteps: []\n")

    with pytest.raises(SourceError):
        sequences.sync(session, clock.now(), templates)

    session.rollback()
    assert [v.version for v in versions(session, "funding-round")] == [1]
