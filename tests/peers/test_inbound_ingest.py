"""Ingesting inbound mail: which touch it answers, stored once, bad input quarantined.

Each test sends a real first email through the engine to a loopback SMTP server and
answers *that* message, so matching runs against the ids a recipient would really see.
Matching and storage run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest
from engine_support import enrollment_of, prepare, write_templates
from inbound_support import GARBAGE, MISENCODED, count, out_of_office, reply, send_first_email
from sqlmodel import select
from typer.testing import CliRunner

from channels.email import SmtpSender
from sequencer.app.cli import app as cli
from sequencer.app.wiring import build as build_runtime
from sequencer.core.models import Decision, InboundMessage
from sequencer.inbound.ingest import ingest_raw

DANA = "dana@northwind.example"
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def runtime(tmp_path, session, clock, settings):
    prepare(session, clock.now(), settings, write_templates(tmp_path / "templates"))
    sender = SmtpSender(timeout=5)
    yield build_runtime(settings, sender, check_domains=False)
    sender.close()


@pytest.mark.parametrize("sender", [DANA, "cto@us.northwind.example"], ids=["prospect", "colleague-on-subdomain"])
def test_a_positive_reply_stops_the_whole_account_naming_who_replied(session, clock, settings, runtime, smtp, sender):
    first, _, _, _ = send_first_email(session, clock, runtime, smtp, DANA, "lee@northwind.example",
                                      "kim@emea.northwind.example", "ana@other.example")

    result = ingest_raw(session, clock.now(), settings,
                        reply(first, "Yes, interested - let's talk next week.", sender=sender))

    assert result.message.match_method == "in-reply-to" and result.message.touch_id == first.touch_id
    assert result.message.detail["match"]["evidence"] == f"in-reply-to {first.message_id}"
    dana, lee, kim = (enrollment_of(session, e) for e in (DANA, "lee@northwind.example", "kim@emea.northwind.example"))
    assert {dana.state, lee.state, kim.state} == {"stopped"}
    assert {dana.rule, lee.rule, kim.rule} == {"builtin.reply.positive"}
    assert dana.reason == f"reply 'Re: {first.subject}' from {sender}"
    assert lee.reason == kim.reason == f"colleague at northwind.example: {dana.reason}"
    assert enrollment_of(session, "ana@other.example").state == "active"


def test_a_positive_reply_from_a_free_mail_address_stops_only_its_sender(session, clock, settings, runtime, smtp):
    first, _ = send_first_email(session, clock, runtime, smtp, "dana.r@gmail.com", "someone.else@gmail.com")

    ingest_raw(session, clock.now(), settings, reply(first, "Yes, interested - let's talk next week."))

    assert enrollment_of(session, "dana.r@gmail.com").state == "stopped"
    assert enrollment_of(session, "someone.else@gmail.com").state == "active"


def test_a_negative_reply_stops_only_that_enrollment(session, clock, settings, runtime, smtp):
    first, _ = send_first_email(session, clock, runtime, smtp, DANA, "lee@northwind.example")

    ingest_raw(session, clock.now(), settings, reply(first, "Not interested, we already have a vendor."))

    dana = enrollment_of(session, DANA)
    assert dana.state == "stopped" and dana.rule == "builtin.reply.negative"  # reply.negative: StopProspect (#15)
    assert enrollment_of(session, "lee@northwind.example").state == "active"


def test_a_reply_with_only_references_is_matched_by_them(session, clock, settings, runtime, smtp):
    first, = send_first_email(session, clock, runtime, smtp, DANA)
    raw = reply(first, "Who else should be in the call?", in_reply_to=False,
                references=["<unrelated-thread@northwind.example>", first.message_id])

    result = ingest_raw(session, clock.now(), settings, raw)

    assert result.message.match_method == "references"
    assert result.message.detail["match"]["strength"] == "strong"
    assert enrollment_of(session, DANA).state == "stopped"


def test_a_reply_without_ids_is_matched_weakly_by_sender_and_subject(session, clock, settings, runtime, smtp):
    first, = send_first_email(session, clock, runtime, smtp, DANA)
    raw = reply(first, "Can you send more details?", in_reply_to=False, subject=f"RE: AW: {first.subject}")

    result = ingest_raw(session, clock.now(), settings, raw)

    assert result.message.match_method == "sender+subject" and result.message.touch_id == first.touch_id
    assert result.message.detail["match"]["strength"] == "weak"
    stopped = session.exec(select(Decision).where(Decision.kind == "stopped")).one()
    assert stopped.detail == {"matched_by": "sender+subject", "match_strength": "weak"}


def test_mail_from_an_unknown_sender_is_stored_and_changes_nothing(session, clock, settings, runtime, smtp):
    first, = send_first_email(session, clock, runtime, smtp, DANA)
    raw = reply(first, "Hello, are you hiring?", sender="stranger@elsewhere.example", in_reply_to=False)

    result = ingest_raw(session, clock.now(), settings, raw)

    assert result.message.id is not None and result.message.touch_id is None
    assert result.message.kind == "reply" and result.message.match_method == ""
    assert "no matching touch" in result.action
    assert enrollment_of(session, DANA).state == "active"
    assert session.exec(select(Decision).where(Decision.kind == "stopped")).all() == []


def test_the_same_message_twice_changes_nothing_the_second_time(session, clock, settings, runtime, smtp):
    first, = send_first_email(session, clock, runtime, smtp, DANA)
    raw = reply(first, "Not interested.")
    ingest_raw(session, clock.now(), settings, raw)
    decisions_before = count(session, Decision)

    again = ingest_raw(session, clock.now(), settings, raw)

    assert again.duplicate and again.action == "duplicate: already processed"
    assert count(session, InboundMessage) == 1
    assert count(session, Decision) == decisions_before


@pytest.mark.parametrize(("raw", "reason"), [
    pytest.param(GARBAGE, "no RFC 5322 header fields", id="binary-garbage"),
    pytest.param(MISENCODED, "no sender", id="mis-encoded-without-sender"),
    pytest.param(b"From: dana@northwind.example\r\nSubject: Re: Hel\x00\x00\x00", "NUL bytes", id="truncated-binary"),
    pytest.param(b"", "empty input", id="empty"),
])
def test_unreadable_input_is_quarantined_with_the_reason_and_nothing_else_changes(
        session, clock, settings, runtime, smtp, raw, reason):
    send_first_email(session, clock, runtime, smtp, DANA)
    decisions_before = count(session, Decision)

    result = ingest_raw(session, clock.now(), settings, raw)

    assert result.message.quarantined and result.message.kind == "quarantined"
    assert reason in result.message.detail["reason"] and result.action.startswith("quarantined: ")
    assert result.message.detail["size"] == len(raw)
    assert count(session, Decision) == decisions_before
    assert enrollment_of(session, DANA).state == "active"
    assert ingest_raw(session, clock.now(), settings, raw).duplicate


@sqlite_only
def test_a_reply_cut_off_mid_attachment_is_still_read_and_acted_on(session, clock, settings, runtime, smtp):
    first, = send_first_email(session, clock, runtime, smtp, DANA)
    full = reply(first, "Not interested, thanks.")
    cut = full.replace(b"Content-Type: text/plain", b"Content-Type: multipart/mixed; boundary=\"cut\"\n\n--cut\n"
                       b"Content-Type: text/plain", 1)[:-20]

    result = ingest_raw(session, clock.now(), settings, cut)

    assert not result.message.quarantined and result.message.match_method == "in-reply-to"
    assert enrollment_of(session, DANA).state == "stopped"


@sqlite_only
def test_a_30_mb_message_is_handled_without_crashing(session, clock, settings, runtime, smtp):
    first, = send_first_email(session, clock, runtime, smtp, DANA)
    raw = reply(first, "Not interested. Attached our policy.") + b"A" * (30 * 1024 * 1024)

    result = ingest_raw(session, clock.now(), settings, raw)

    assert result.message.match_method == "in-reply-to"
    assert enrollment_of(session, DANA).state == "stopped"


@sqlite_only
def test_bad_messages_in_a_batch_never_lose_the_good_ones(session, clock, settings, runtime, smtp):
    first, second = send_first_email(session, clock, runtime, smtp, DANA, "ana@other.example")
    batch = [GARBAGE, reply(first, "Not interested."), MISENCODED, reply(second, "No thanks.")]

    results = [ingest_raw(session, clock.now(), settings, raw) for raw in batch]

    assert [r.message.quarantined for r in results] == [True, False, True, False]
    assert enrollment_of(session, DANA).state == "stopped"
    assert enrollment_of(session, "ana@other.example").state == "stopped"


def explain_output(monkeypatch, tmp_path, settings, email: str) -> str:
    """``sequencer explain EMAIL`` as a user runs it, on the test's database."""
    monkeypatch.chdir(tmp_path)  # no sequencer.toml here: settings come from the environment
    monkeypatch.setenv("SEQUENCER_DATABASE_URL", settings.database_url)
    result = CliRunner().invoke(cli, ["explain", email], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.output


@sqlite_only
def test_explain_names_the_rule_that_stopped_or_paused_an_enrollment(
        session, clock, settings, runtime, smtp, monkeypatch, tmp_path):
    first, second = send_first_email(session, clock, runtime, smtp, DANA, "ana@other.example")
    ingest_raw(session, clock.now(), settings, reply(first, "Not interested."))
    ingest_raw(session, clock.now(), settings, out_of_office(second, "I am out of the office with no access."))

    stopped = explain_output(monkeypatch, tmp_path, settings, DANA)
    paused = explain_output(monkeypatch, tmp_path, settings, "ana@other.example")

    assert "- stopped (reply 'Re: Hello Dana' from dana@northwind.example) by rule builtin.reply.negative" in stopped
    assert "- paused (out of office, no return date given: pausing 5 days) by rule builtin.out_of_office" in paused


@sqlite_only
def test_explain_names_the_rule_on_the_decision_line(session, clock, settings, runtime, smtp, monkeypatch, tmp_path):
    first, = send_first_email(session, clock, runtime, smtp, DANA)
    ingest_raw(session, clock.now(), settings, reply(first, "Not interested."))

    output = explain_output(monkeypatch, tmp_path, settings, DANA)

    assert "[rule builtin.reply.negative]" in output
