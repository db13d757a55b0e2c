"""Rules that would break the law are refused, each as file:line, and the built-ins are lawful."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sequencer.rules.book import BUILTIN_RULES, RuleBook, RulesError
from sequencer.rules.law import violations
from sequencer.rules.parse import load_rules

pytestmark = pytest.mark.unit

SHIPPED = Path(__file__).resolve().parents[2] / "templates" / "rules.yaml"


def refused(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    with pytest.raises(RulesError) as info:
        load_rules(path)
    return [error.removeprefix(f"{path}:") for error in info.value.errors]


def test_builtins_and_the_shipped_file_are_lawful() -> None:
    assert violations(RuleBook({}, {}), "x", {}) == []
    assert violations(RuleBook(dict(BUILTIN_RULES), {}), "x", {}) == []
    load_rules(SHIPPED)


@pytest.mark.parametrize(("text", "expected"), [
    ("defaults:\n  unsubscribe_request: [ignore]\n",
     "2: defaults.unsubscribe_request: an unsubscribe request must be honoured (CAN-SPAM, GDPR art. 21, RFC 8058): "
     "it may not be ignored"),
    ("defaults:\n  reply: [stop]\n  complaint: [stop]\n",
     "3: defaults.complaint: a spam complaint must be honoured (mailbox providers' bulk-sender rules): add suppress"),
    ("defaults:\n  complaint: [suppress]\n", "2: defaults.complaint: a spam complaint must be honoured"
     " (mailbox providers' bulk-sender rules): add stop (or stop_prospect, stop_account)"),
    ("defaults:\n  unsubscribe_request: [stop, {suppress: {expires_after_days: 30}}]\n",
     "the suppression must not expire (drop expires_after_days: 30)"),
    ("defaults:\n  bounce.hard: [stop, {suppress: {expires_after_days: 30}}]\n",
     "suppress.expires_after_days must be at least 180 (or left out), got 30"),
    # hard bounces fall back to a generic bounce rule written in the file, before the built-ins
    ("defaults:\n  bounce:\n    - retry: {max_attempts: 2}\n    - stop\n",
     "2: defaults.bounce (bounce.hard falls back to this rule): a hard-bounced address must not be emailed again"),
    ("defaults:\n  bounce.user_unknown: [stop]\n",
     "2: defaults.bounce.user_unknown: a hard-bounced address must not be emailed again (mailbox providers' "
     "bulk-sender rules): add suppress"),
    ("sequences:\n  funding-round:\n    unsubscribe_request: [stop_prospect]\n",
     "3: sequences.funding-round.unsubscribe_request: an unsubscribe request must be honoured"),
    ("defaults:\n  bounce.soft:\n    - retry: {max_attempts: 50}\n    - stop\n",
     "3: defaults.bounce.soft: retry.max_attempts must be between 1 and 5, got 50"),
    ("defaults:\n  bounce.soft:\n    - retry: {backoff_hours: 0}\n    - stop\n",
     "3: defaults.bounce.soft: retry.backoff_hours must be between 1 and 168, got 0"),
    ("defaults:\n  out_of_office:\n    - pause_until_return: {default_days: 365}\n",
     "3: defaults.out_of_office: pause_until_return.default_days must be between 1 and 30, got 365"),
])
def test_unlawful_rules_are_refused_with_their_line(tmp_path: Path, text: str, expected: str) -> None:
    errors = refused(tmp_path, text)
    assert any(expected in error for error in errors), errors


def test_a_hard_bounce_rule_with_a_retry_is_named_once_with_every_problem(tmp_path: Path) -> None:
    errors = refused(tmp_path, "defaults:\n  bounce: [{retry: {max_attempts: 2}}, stop]\n")
    assert errors == [
        "2: defaults.bounce (bounce.hard falls back to this rule): a hard-bounced address must not be emailed "
        "again (mailbox providers' bulk-sender rules): add suppress, so no other sequence mails the address",
        "2: defaults.bounce (bounce.hard falls back to this rule): a hard-bounced address must not be emailed "
        "again (mailbox providers' bulk-sender rules): a hard bounce may not be retried (the address does not exist)",
    ]


def test_lawful_variations_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent("""
        defaults:
          unsubscribe_request: [stop_account, {suppress: {reason: unsubscribed}}]
          complaint: [stop_prospect, suppress]
          bounce: [{retry: {max_attempts: 5, backoff_hours: 168}}, stop]
          bounce.hard: [stop, {suppress: {expires_after_days: 365}}]
        sequences:
          funding-round:
            reply: [ignore]
    """))
    book = load_rules(path)
    assert book.actions_for("bounce", "funding-round", bounce_type="hard").name == "defaults.bounce.hard"


def test_shape_errors_come_first(tmp_path: Path) -> None:
    """A file that is not well formed is refused for that alone; the law is checked once it reads."""
    errors = refused(tmp_path, "defaults:\n  complaint: [ignore]\n  replied: [stop]\n")
    assert errors == ["3: defaults: unknown event 'replied' (known: reply, out_of_office, auto_reply, bounce, "
                      "complaint, unsubscribe_request, left_company, meeting_booked, meeting_declined, "
                      "meeting_no_show, task)"]


# --- the CLI: check names real sequences, explain says what happens -----------------------


def rules_cli(*args: str):
    from typer.testing import CliRunner

    from sequencer.app.cli import app

    return CliRunner().invoke(app, ["rules", *args])


def test_check_refuses_sequences_the_templates_do_not_have(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEQUENCER_CONFIG", raising=False)
    path = tmp_path / "rules.yaml"
    path.write_text("sequences:\n  funding-rounds:\n    reply: [stop]\n  job-change:\n"
                    "    left_company: [stop, {enroll: {sequence: referal}}]\n")

    result = rules_cli("check", str(path), "--templates", str(SHIPPED.parent))

    assert result.exit_code == 1
    assert f"{path}:2: sequences: unknown sequence 'funding-rounds'" in result.output
    assert f"{path}:5: sequences.job-change.left_company: enroll: unknown sequence 'referal'" in result.output
    assert "known sequences: funding-round, inbound-form, job-change" in result.output


def test_check_refuses_an_unlawful_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "rules.yaml"
    path.write_text("defaults:\n  complaint: [stop]\n")

    result = rules_cli("check", str(path), "--any-sequence")

    assert result.exit_code == 1 and f"{path}:2: defaults.complaint: a spam complaint must be honoured" in result.output


def test_explain_prints_the_rule_step_by_step(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEQUENCER_CONFIG", raising=False)
    monkeypatch.delenv("SEQUENCER_RULES_FILE", raising=False)

    soft = rules_cli("explain", "bounce.soft")
    hard = rules_cli("explain", "bounce.user_unknown", "--sequence", "funding-round")
    wrong = rules_cli("explain", "reply.angry")

    assert soft.exit_code == 0, soft.output
    assert "bounce.soft: rule builtin.bounce.soft (built-in defaults)" in soft.output
    assert "1. retry: send the step again after 24 h, at most 3 sends in all" in soft.output
    assert "2. stop: stop this enrollment" in soft.output
    assert "rule builtin.bounce.hard" in hard.output and "suppress: suppress the address (hard_bounce), for good" \
        in hard.output
    assert wrong.exit_code == 1 and "unknown reply qualifier 'angry' (known: positive, negative, neutral)" in \
        wrong.output
