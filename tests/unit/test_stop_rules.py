"""Stop rules: defaults, overrides, precedence and file:line validation of the rules file."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from sequencer.app.cli.rules import app as rules_app
from sequencer.rules.book import (
    BUILTIN_RULES,
    EVENTS,
    Enroll,
    Ignore,
    PauseMailboxAfter,
    PauseUntilReturn,
    Retry,
    RulesError,
    Stop,
    StopAccount,
    StopProspect,
    Suppress,
)
from sequencer.rules.parse import load_rules

SHIPPED = Path(__file__).resolve().parents[2] / "templates" / "rules.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def errors_of(tmp_path: Path, text: str, **kwargs: object) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(RulesError) as info:
        load_rules(path, **kwargs)
    return [error.removeprefix(f"{path}:") for error in info.value.errors]


# --- built-in defaults ------------------------------------------------------------------


def test_builtin_defaults_when_no_file() -> None:
    book = load_rules(None)
    assert book.actions_for("reply", None).actions == [Stop()]
    positive = book.actions_for("reply", "any", sentiment="positive")
    assert positive.name == "builtin.reply.positive"
    assert positive.actions == [StopAccount()]
    negative = book.actions_for("reply", None, sentiment="negative")
    assert (negative.name, negative.actions) == ("builtin.reply.negative", [StopProspect()])
    assert book.actions_for("out_of_office", None).actions == [
        PauseUntilReturn(plus_business_days=1, default_days=5)
    ]
    assert book.actions_for("bounce", None, bounce_type="hard").actions == [
        Stop(),
        Suppress(expires_after_days=None, reason="hard_bounce"),
    ]
    assert book.actions_for("bounce", None, bounce_type="soft").actions == [
        Retry(max_attempts=3, backoff_hours=24),
        Stop(),
    ]
    block = book.actions_for("bounce", None, bounce_type="block").actions
    assert block == [PauseMailboxAfter(blocks=5), Retry(max_attempts=3, backoff_hours=24), Stop()]
    assert not any(isinstance(action, Suppress) for action in block)
    assert book.actions_for("complaint", None).actions == [Stop(), Suppress(reason="complaint")]
    assert book.actions_for("unsubscribe_request", None).actions == [
        Stop(),
        Suppress(reason="unsubscribed"),
    ]
    assert book.actions_for("meeting_booked", None).actions == [StopProspect()]
    assert book.actions_for("task.not_interested", None).actions == [StopProspect()]
    assert book.actions_for("task.connected", None).name == "builtin.task"
    assert book.actions_for("left_company", None).actions == [Stop()]


def test_builtins_cover_every_event_and_qualifier() -> None:
    book = load_rules(None)
    for event, qualifiers in EVENTS.items():
        assert book.actions_for(event, None).name == f"builtin.{event}"
        for qualifier in qualifiers:
            if event in ("reply", "bounce"):
                kwargs = {"sentiment" if event == "reply" else "bounce_type": qualifier}
                assert book.actions_for(event, None, **kwargs).name.startswith(f"builtin.{event}")
            else:  # the other events carry their qualifier in the name: meeting_no_show.prospect
                assert book.actions_for(f"{event}.{qualifier}", None).name.startswith(f"builtin.{event}")


def test_shipped_rules_file_validates_and_matches_builtins() -> None:
    book = load_rules(SHIPPED)
    written = {rule.name.removeprefix("defaults."): rule.actions for rule in book.rules()}
    assert written == {key: list(actions) for key, actions in BUILTIN_RULES.items()}


def test_empty_file_means_builtins(tmp_path: Path) -> None:
    book = load_rules(write(tmp_path, "# nothing yet\n"))
    assert book.actions_for("reply", "x").name == "builtin.reply"
    assert list(book.rules()) == []


def test_empty_sections_are_allowed(tmp_path: Path) -> None:
    book = load_rules(write(tmp_path, "defaults:\nsequences:\n"))
    assert book.actions_for("complaint", None).name == "builtin.complaint"


# --- overrides and precedence -------------------------------------------------------------

PRECEDENCE = """
defaults:
  reply: [stop]
  reply.negative: [stop, {suppress: {expires_after_days: 90}}]
  left_company: [stop, {enroll: {sequence: referral}}]
sequences:
  funding-round:
    reply.negative: [stop, {suppress: {expires_after_days: 180, reason: manual}}]
  intent:
    reply: [stop_account]
"""


def test_sequence_and_qualifier_beats_everything(tmp_path: Path) -> None:
    book = load_rules(write(tmp_path, PRECEDENCE))
    rule = book.actions_for("reply", "funding-round", sentiment="negative")
    assert rule.name == "sequences.funding-round.reply.negative"
    assert rule.actions == [Stop(), Suppress(expires_after_days=180, reason="manual")]


def test_sequence_beats_defaults_with_qualifier(tmp_path: Path) -> None:
    book = load_rules(write(tmp_path, PRECEDENCE))
    rule = book.actions_for("reply", "intent", sentiment="negative")
    assert rule.name == "sequences.intent.reply"
    assert rule.actions == [StopAccount()]


def test_defaults_with_qualifier_beat_defaults(tmp_path: Path) -> None:
    book = load_rules(write(tmp_path, PRECEDENCE))
    rule = book.actions_for("reply", "other", sentiment="negative")
    assert rule.name == "defaults.reply.negative"
    assert rule.actions == [Stop(), Suppress(expires_after_days=90, reason="manual")]


def test_file_defaults_beat_builtin_qualifier(tmp_path: Path) -> None:
    book = load_rules(write(tmp_path, PRECEDENCE))
    rule = book.actions_for("reply", None, sentiment="positive")
    assert rule.name == "defaults.reply"
    assert rule.actions == [Stop()]


def test_unwritten_events_fall_back_to_builtins(tmp_path: Path) -> None:
    book = load_rules(write(tmp_path, PRECEDENCE))
    assert book.actions_for("complaint", "funding-round").name == "builtin.complaint"
    assert book.actions_for("bounce", "intent", bounce_type="hard").name == "builtin.bounce.hard"
    assert book.actions_for("left_company", None).actions == [Stop(), Enroll(sequence="referral")]


def test_returned_actions_are_a_copy(tmp_path: Path) -> None:
    book = load_rules(write(tmp_path, PRECEDENCE))
    book.actions_for("reply", None).actions.clear()
    assert book.actions_for("reply", None).actions == [Stop()]


def test_bare_and_parameterised_actions(tmp_path: Path) -> None:
    book = load_rules(
        write(
            tmp_path,
            """
        defaults:
          out_of_office: [pause_until_return]
          auto_reply: [{pause_until_return: {default_days: 2}}]
          bounce.soft: [{retry: {max_attempts: 2, backoff_hours: 1.5}}, stop]
          bounce.block: [{pause_mailbox_after: {blocks: 1}}]
          complaint: [{stop: {}}, suppress]
          meeting_booked: [ignore]
    """,
        )
    )
    assert book.actions_for("out_of_office", None).actions == [PauseUntilReturn(1, 5)]
    assert book.actions_for("auto_reply", None).actions == [PauseUntilReturn(1, 2)]
    soft = book.actions_for("bounce", None, bounce_type="soft").actions
    assert soft == [Retry(max_attempts=2, backoff_hours=1.5), Stop()]
    block = book.actions_for("bounce", None, bounce_type="block").actions
    assert block == [PauseMailboxAfter(blocks=1)]
    assert book.actions_for("complaint", None).actions == [Stop(), Suppress(reason="complaint")]
    assert book.actions_for("meeting_booked", None).actions == [Ignore()]


def test_action_text_for_explanations() -> None:
    assert str(Stop()) == "stop"
    assert str(Suppress(expires_after_days=30, reason="manual")) == (
        "suppress(expires_after_days=30, reason=manual)"
    )
    assert str(Suppress(reason="complaint")) == "suppress(reason=complaint)"


def test_known_sequences_are_checked_when_given(tmp_path: Path) -> None:
    assert errors_of(tmp_path, PRECEDENCE, known_sequences={"funding-round", "referral"}) == [
        "8: sequences: unknown sequence 'intent'",
    ]
    assert errors_of(tmp_path, PRECEDENCE, known_sequences={"funding-round", "intent"}) == [
        "4: defaults.left_company: enroll: unknown sequence 'referral'",
    ]
    load_rules(write(tmp_path, PRECEDENCE), known_sequences={"funding-round", "intent", "referral"})


@pytest.mark.parametrize(
    ("event", "kwargs", "message"),
    [
        ("replied", {}, "unknown event"),
        ("reply", {"sentiment": "angry"}, "unknown reply qualifier"),
        ("reply", {"bounce_type": "hard"}, "does not take"),
        ("bounce", {"sentiment": "positive"}, "does not take"),
        ("complaint", {"bounce_type": "hard"}, "does not take"),
    ],
)
def test_actions_for_refuses_caller_mistakes(event: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_rules(None).actions_for(event, None, **kwargs)


# --- every error kind, with its line -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("defaults:\n  replied: [stop]\n", "2: defaults: unknown event 'replied'"),
        ("defaults:\n  reply.angry: [stop]\n", "2: defaults: unknown reply qualifier 'angry'"),
        ("defaults:\n  complaint.hard: [stop]\n", "2: defaults: unknown complaint qualifier"),
        (
            "defaults:\n  reply:\n    - stop\n    - halt\n",
            "4: defaults.reply: unknown action 'halt'",
        ),
        (
            "defaults:\n  out_of_office:\n    - pause_until_return: {default_days: five}\n",
            (
                "3: defaults.out_of_office: pause_until_return.default_days must be a whole number,"
                " got 'five'"
            ),
        ),
        (
            "defaults:\n  bounce.block:\n    - pause_mailbox_after:\n        blocks: true\n",
            "4: defaults.bounce.block: pause_mailbox_after.blocks must be a whole number",
        ),
        (
            "defaults:\n  bounce.soft: [{retry: {backoff_hours: soon}}]\n",
            "2: defaults.bounce.soft: retry.backoff_hours must be a number",
        ),
        (
            "defaults:\n  complaint: [{suppress: {reason: 3}}]\n",
            "2: defaults.complaint: suppress.reason must be text",
        ),
        (
            (
                "defaults:\n  out_of_office:\n    - pause_until_return:\n"
                "        plus_business_days: -1\n"
            ),
            "4: defaults.out_of_office: pause_until_return.plus_business_days must be at least 0",
        ),
        (
            "defaults:\n  complaint: [{suppress: {expires_after_days: 0}}]\n",
            "2: defaults.complaint: suppress.expires_after_days must be at least 1",
        ),
        (
            "defaults:\n  bounce.soft:\n    - retry: {max_attempts: 0}\n",
            "3: defaults.bounce.soft: retry.max_attempts must be at least 1",
        ),
        (
            "defaults:\n  complaint:\n    - suppress:\n        expires: 30\n",
            "4: defaults.complaint: suppress: unknown parameter 'expires'",
        ),
        (
            "defaults:\n  reply: [{stop: {now: true}}]\n",
            "2: defaults.reply: stop: unknown parameter",
        ),
        ("defaults: {}\nrules: {}\n", "2: unknown top-level key 'rules'"),
        ("defaults:\n  reply: [stop\n  bounce: [stop]\n", "3: YAML syntax error"),
        ("defaults:\n\treply: [stop]\n", "2: YAML syntax error"),
        ("defaults:\n  reply: [stop]\n  reply: [ignore]\n", "3: defaults: duplicate key 'reply'"),
        ("defaults:\n  reply: []\n", "2: defaults.reply: empty action list"),
        ("defaults:\n  reply: stop\n", "2: defaults.reply: must be a list of actions"),
        ("defaults:\n  reply: [stop, ignore]\n", "2: defaults.reply: ignore cannot be combined"),
        ("defaults:\n  reply: [stop, stop]\n", "2: defaults.reply: action 'stop' listed twice"),
        (
            "defaults:\n  reply: [{retry: {max_attempts: 2}}]\n",
            "2: defaults.reply: retry only applies to bounce, bounce.block, bounce.soft",
        ),
        (
            "defaults:\n  bounce.hard: [pause_mailbox_after]\n",
            "2: defaults.bounce.hard: pause_mailbox_after only applies to",
        ),
        (
            "defaults:\n  reply: [pause_until_return]\n",
            "2: defaults.reply: pause_until_return only",
        ),
        ("defaults:\n  left_company: [stop, enroll]\n", "2: defaults.left_company: enroll needs"),
        (
            "defaults:\n  left_company: [{enroll: {sequence: ' '}}]\n",
            "2: defaults.left_company: enroll.sequence must not be empty",
        ),
        (
            "defaults:\n  reply: [{stop: 1, suppress: 2}]\n",
            "2: defaults.reply: an action is a name or a one-key mapping",
        ),
        (
            "defaults:\n  reply: [{suppress: forever}]\n",
            "2: defaults.reply: suppress must be a map",
        ),
        (
            "defaults:\n  complaint: [{suppress: {reason: [a, b]}}]\n",
            "2: defaults.complaint: suppress.reason must be a single value",
        ),
        ("- reply\n", "1: the rules file must be a mapping"),
        ("defaults: [reply]\n", "1: defaults must be a mapping"),
        ("sequences:\n  x: [stop]\n", "2: sequences.x must be a mapping"),
        ("defaults:\n  [a]: [stop]\n", "2: defaults: keys must be text"),
        ("defaults:\n  reply: [!!python/name:os.system stop]\n", "2: cannot read value"),
        ("a: 1\n---\nb: 2\n", "2: YAML syntax error"),
        ("defaults:\n  complaint: [{suppress: {reason: !!python/none x}}]\n", "2: cannot read"),
        ("defaults:\n  !!python/str reply: [stop]\n", "2: cannot read value"),
    ],
)
def test_each_error_names_its_line(tmp_path: Path, text: str, expected: str) -> None:
    errors = errors_of(tmp_path, text)
    assert len(errors) == 1, errors
    assert errors[0].startswith(expected), errors


def test_sequence_override_errors_name_the_sequence(tmp_path: Path) -> None:
    errors = errors_of(
        tmp_path,
        """
        sequences:
          funding-round:
            reply.negative: [stop, {suppress: {expires_after_days: -5}}]
    """,
    )
    assert errors == [
        (
            "3: sequences.funding-round.reply.negative: suppress.expires_after_days must be"
            " at least 1, got -5"
        )
    ]


def test_every_error_is_reported_together(tmp_path: Path) -> None:
    errors = errors_of(
        tmp_path,
        """
        defaults:
          reply: [stop]
          replied: [stop]
          bounce.hard: [stop, nuke]
          out_of_office:
            - pause_until_return: {plus_business_days: -2, default_days: x}
        sequences:
          funding-round:
            complaint: [{suppress: {forever: true}}]
        version: 2
    """,
    )
    assert [error.split(":")[0] for error in errors] == ["3", "4", "6", "6", "9", "10"]
    assert "unknown event 'replied'" in errors[0]
    assert "unknown action 'nuke'" in errors[1]
    assert "plus_business_days must be at least 0" in errors[2]
    assert "default_days must be a whole number" in errors[3]
    assert "unknown parameter 'forever'" in errors[4]
    assert "unknown top-level key 'version'" in errors[5]


def test_errors_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "defaults:\n  replied: [stop]\n")
    with pytest.raises(RulesError) as info:
        load_rules(path)
    assert info.value.errors[0].startswith(f"{path}:2: ")
    assert str(path) in str(info.value)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RulesError) as info:
        load_rules(tmp_path / "nope.yaml")
    assert info.value.errors[0].startswith(f"{tmp_path / 'nope.yaml'}:1: cannot read rules file")


# --- CLI --------------------------------------------------------------------------------


def run_cli(*args: str) -> object:
    root = typer.Typer()
    root.add_typer(rules_app, name="rules")
    return CliRunner().invoke(root, ["rules", "check", *args])


def test_cli_check_ok_prints_summary() -> None:
    result = run_cli(str(SHIPPED))
    assert result.exit_code == 0, result.output
    assert f"OK: {SHIPPED}" in result.output
    assert "defaults.bounce.hard" in result.output
    assert "stop, suppress(reason=hard_bounce)" in result.output


def test_cli_check_lists_every_error_and_fails(tmp_path: Path) -> None:
    path = write(tmp_path, "defaults:\n  replied: [stop]\n  reply: [halt]\n")
    result = run_cli(str(path))
    assert result.exit_code == 1
    assert f"{path}:2: defaults: unknown event 'replied'" in result.output
    assert f"{path}:3: defaults.reply: unknown action 'halt'" in result.output
    assert "OK" not in result.output


def test_cli_check_shows_sequence_overrides(tmp_path: Path) -> None:
    result = run_cli(str(write(tmp_path, PRECEDENCE)), "--any-sequence")  # not the shipped sequences' names
    assert result.exit_code == 0, result.output
    assert "sequences.intent.reply" in result.output
    assert "builtin.complaint" in result.output


def test_cli_check_defaults_to_configured_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEQUENCER_CONFIG", raising=False)
    monkeypatch.setenv("SEQUENCER_RULES_FILE", str(write(tmp_path, "defaults:\n  reply: [x]\n")))
    result = run_cli()
    assert result.exit_code == 1
    assert "rules.yaml:2: defaults.reply: unknown action 'x'" in result.output


def test_cli_check_without_any_file_checks_builtins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEQUENCER_CONFIG", raising=False)
    monkeypatch.delenv("SEQUENCER_RULES_FILE", raising=False)
    result = run_cli()
    assert result.exit_code == 0, result.output
    assert "OK: built-in defaults" in result.output
    assert "builtin.reply.positive" in result.output
