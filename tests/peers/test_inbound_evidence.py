"""Inbound mail is evidence, not a command: a message acts only on what it provably concerns.

Each test sends real first emails through the engine to a loopback SMTP server, then
feeds back mail a stranger could write: RFC 3464 bounces to a forged, unsigned or foreign
return path, bounces and complaints quoting a Message-ID that is not ours, replies from
``x@%`` or a public suffix, unsubscribe requests in someone else's name. Each is stored
and shown, and changes nothing. The genuine counterpart of each still acts. SQLite and
PostgreSQL both (the db_url fixture); a batch also goes through ``sequencer inbound ingest``
over an mbox file.
"""

from __future__ import annotations

import mailbox
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid

import pytest
from engine_support import enrollment_of, prepare, write_templates
from inbound_support import OUR_MAILBOX, count, dsn, reply, send_first_email
from sqlmodel import select
from typer.testing import CliRunner

from channels import verp
from channels.email import SmtpSender
from sequencer.app.cli import app as cli
from sequencer.app.wiring import build as build_runtime
from sequencer.core.models import CapCounter, Decision, InboundMessage, Mailbox
from sequencer.engine.explain import explain
from sequencer.inbound.ingest import ingest_raw
from suppression.models import SuppressionEntry

DANA = "dana@northwind.example"
LEE = "lee@northwind.example"
_NOW = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
BLOCKED = "550 5.7.1 Service unavailable; client [203.0.113.5] blocked using zen.spamhaus.org"


@pytest.fixture
def runtime(tmp_path, session, clock, settings):
    prepare(session, clock.now(), settings, write_templates(tmp_path / "templates"))
    sender = SmtpSender(timeout=5)
    yield build_runtime(settings, sender, check_domains=False)
    sender.close()


def suppressed(session) -> dict[str, str]:
    session.expire_all()
    return {entry.value: entry.reason for entry in session.exec(select(SuppressionEntry))}


def not_acted(session, email: str) -> list[str]:
    """The 'not acted on' decisions ``sequencer explain EMAIL`` shows for a prospect."""
    story = explain(session, email)
    rows = [d for s in story.stories for d in s.decisions] + story.other
    return [d.reason for d in rows if d.kind == "not_acted"]


def bounce(return_path: str, recipient: str, status: str, diagnostic: str, *, original_id: str,
           subject: str = "Hello Dana") -> bytes:
    """An RFC 3464 DSN as a receiving MTA writes it: sent to ``return_path``, the original's
    headers returned as text/rfc822-headers with ``original_id`` as their Message-ID."""
    boundary = "=_dsn_" + make_msgid().strip("<>").split("@")[0].replace(".", "_")
    return (
        f"Return-Path: <>\r\nDelivered-To: {return_path}\r\n"
        f"From: Mail Delivery System <MAILER-DAEMON@mx.northwind.example>\r\nTo: {return_path}\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\nDate: {format_datetime(_NOW)}\r\n"
        f"Message-ID: {make_msgid(domain='mx.northwind.example')}\r\nAuto-Submitted: auto-replied\r\n"
        f"MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        f"Your message could not be delivered to {recipient}.\r\n\r\n{diagnostic}\r\n"
        f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.northwind.example\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {diagnostic}\r\n"
        f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Return-Path: <{return_path}>\r\nFrom: Sam Rivera <{OUR_MAILBOX}>\r\nTo: {recipient}\r\n"
        f"Subject: {subject}\r\nMessage-ID: {original_id}\r\n"
        f"--{boundary}--\r\n"
    ).encode()


def complaint(recipient: str, *, original_id: str) -> bytes:
    """An RFC 5965 abuse report about ``recipient`` whose attached original is not ours."""
    boundary = "=_arf_" + make_msgid().strip("<>").split("@")[0].replace(".", "_")
    return (
        f"From: Mail AntiSpam Feedback <feedback@arf.mail.example>\r\nTo: fbl@outreach-acme.example\r\n"
        f"Subject: FW: Hello Dana\r\nDate: {format_datetime(_NOW)}\r\n"
        f"Message-ID: {make_msgid(domain='arf.mail.example')}\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=feedback-report; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
        f"--{boundary}\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: abuse\r\nUser-Agent: Feedback/2.0\r\nVersion: 1\r\n"
        f"Original-Rcpt-To: <{recipient}>\r\nSource-IP: 203.0.113.5\r\n"
        f"--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n"
        f"From: Sam Rivera <{OUR_MAILBOX}>\r\nTo: {recipient}\r\nSubject: Hello Dana\r\n"
        f"Message-ID: {original_id}\r\n\r\nHi, a quick question.\r\n"
        f"--{boundary}--\r\n"
    ).encode()


def letter(sender: str, subject: str, body: str, **headers: str) -> bytes:
    """A person's message to our mailbox, threaded only if ``headers`` say so."""
    extra = "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in headers.items())
    return (f"From: {sender}\r\nTo: {OUR_MAILBOX}\r\nSubject: {subject}\r\nDate: {format_datetime(_NOW)}\r\n"
            f"Message-ID: {make_msgid(domain='sender.example')}\r\n{extra}\r\n{body}\r\n").encode()


NOT_OURS = "<4f1c.forged@outreach-acme.example>"  # our domain, but no touch of ours has this id


# --- 1. signed VERP ---------------------------------------------------------------------------

def _forged_return_path(kind: str, touch_id: int) -> str:
    if kind == "unsigned-old-format":
        return f"sam+t{touch_id}@outreach-acme.example"  # what the engine wrote before tokens were signed
    if kind == "forged-mac":
        return f"sam+t{touch_id}-aaaaaaaaaa@outreach-acme.example"
    return verp.return_path(OUR_MAILBOX, touch_id, "somebody-elses-secret-0123456789")


@pytest.mark.parametrize("kind", ["unsigned-old-format", "forged-mac", "other-secret"])
def test_five_forged_block_bounces_pause_no_mailbox_and_count_nothing(session, clock, settings, runtime, smtp,
                                                                       kind):
    first, = send_first_email(session, clock, runtime, smtp, DANA)
    return_path = _forged_return_path(kind, first.touch_id)

    results = [ingest_raw(session, clock.now(), settings,
                          bounce(return_path, DANA, "5.7.1", BLOCKED, original_id=NOT_OURS)) for _ in range(5)]

    session.expire_all()
    assert [r.message.kind for r in results] == ["bounce"] * 5 and not any(r.duplicate for r in results)
    assert all(r.message.match_method != "verp" and r.done == [] for r in results)
    assert all("not acted on" in r.action for r in results)
    assert not any(m.paused for m in session.exec(select(Mailbox)))
    assert session.exec(select(CapCounter).where(CapCounter.key.startswith("blocks:"))).all() == []
    assert session.exec(select(Decision).where(Decision.kind == "block_counted")).all() == []
    assert enrollment_of(session, DANA).state == "active"
    assert count(session, InboundMessage) == 5
    assert len(not_acted(session, DANA)) == 5


def test_a_bounce_to_the_signed_return_path_alone_acts(session, clock, settings, runtime, smtp):
    first, = send_first_email(session, clock, runtime, smtp, DANA)
    assert verp.touch_id_in_address(first.envelope_from, settings.secret_key) == first.touch_id

    result = ingest_raw(session, clock.now(), settings,
                        bounce(first.envelope_from, DANA, "5.1.1", "550 5.1.1 user unknown", original_id=NOT_OURS))

    assert result.message.match_method == "verp" and result.message.touch_id == first.touch_id
    assert suppressed(session) == {DANA: "hard_bounce"}
    assert enrollment_of(session, DANA).state == "stopped"


def test_a_return_path_case_folded_on_the_way_back_still_verifies(session, clock, settings, runtime, smtp):
    first, = send_first_email(session, clock, runtime, smtp, DANA)
    local, _, domain = first.envelope_from.partition("@")

    result = ingest_raw(session, clock.now(), settings, bounce(f"{local.upper()}@{domain}", DANA, "5.1.1",
                                                               "550 5.1.1 user unknown", original_id=NOT_OURS))

    assert result.message.match_method == "verp" and suppressed(session) == {DANA: "hard_bounce"}


# --- 2. evidence before action ----------------------------------------------------------------

def test_a_bounce_quoting_a_message_id_that_is_not_ours_is_stored_and_shown_but_acts_on_nothing(
        session, clock, settings, runtime, smtp):
    send_first_email(session, clock, runtime, smtp, DANA)

    result = ingest_raw(session, clock.now(), settings,
                        bounce(OUR_MAILBOX, DANA, "5.1.1", "550 5.1.1 user unknown", original_id=NOT_OURS))

    assert result.message.id is not None and result.message.kind == "bounce"
    assert result.message.detail["match"]["strength"] == "weak" and "not_acted" in result.message.detail
    assert suppressed(session) == {}
    assert enrollment_of(session, DANA).state == "active"
    reasons = not_acted(session, DANA)
    assert len(reasons) == 1 and "must name our mail by its Message-ID or a signed return path" in reasons[0]


def test_a_bounce_for_an_address_we_never_mailed_suppresses_nothing(session, clock, settings, runtime, smtp):
    send_first_email(session, clock, runtime, smtp, DANA)

    result = ingest_raw(session, clock.now(), settings, bounce(OUR_MAILBOX, "ceo@bigcustomer.example", "5.1.1",
                                                               "550 5.1.1 user unknown", original_id=NOT_OURS))

    assert result.message.touch_id is None and "no matching touch" in result.action
    assert suppressed(session) == {}


def test_a_complaint_about_mail_that_is_not_ours_suppresses_and_stops_nothing(session, clock, settings, runtime,
                                                                              smtp):
    send_first_email(session, clock, runtime, smtp, DANA)

    result = ingest_raw(session, clock.now(), settings, complaint(DANA, original_id=NOT_OURS))

    assert result.message.kind == "complaint" and result.message.detail["match"]["strength"] == "weak"
    assert suppressed(session) == {}
    assert enrollment_of(session, DANA).state == "active"
    assert len(not_acted(session, DANA)) == 1


def test_a_genuine_bounce_naming_another_recipient_acts_on_the_address_our_touch_went_to(
        session, clock, settings, runtime, smtp):
    first, = send_first_email(session, clock, runtime, smtp, DANA)

    result = ingest_raw(session, clock.now(), settings,
                        dsn(first, "5.1.1", "550 5.1.1 user unknown", recipient="victim@elsewhere.example"))

    assert result.message.match_method == "original-message-id"
    assert suppressed(session) == {DANA: "hard_bounce"}
    assert "(it names victim@elsewhere.example)" in enrollment_of(session, DANA).reason


def test_a_reply_that_matches_no_touch_stops_no_account(session, clock, settings, runtime, smtp):
    send_first_email(session, clock, runtime, smtp, DANA, LEE)

    result = ingest_raw(session, clock.now(), settings,
                        letter("ceo@northwind.example", "Your product", "Yes, interested - let's talk next week."))

    assert result.message.kind == "reply" and result.message.touch_id is None
    assert enrollment_of(session, DANA).state == enrollment_of(session, LEE).state == "active"


# --- 3. stop_account acts only on a matched prospect's real registrable domain ----------------------

@pytest.mark.parametrize("sender", ["x@%", "Eve <x@%>", "a@co.uk", "someone@example"])
def test_a_positive_reply_from_a_wildcard_or_public_suffix_sender_stops_nothing(session, clock, settings, runtime,
                                                                                smtp, sender):
    send_first_email(session, clock, runtime, smtp, DANA, "kim@acme.co.uk", "ana@other.example")

    ingest_raw(session, clock.now(), settings, letter(sender, "Re: Hello Dana", "Yes, interested - let's talk."))

    for email in (DANA, "kim@acme.co.uk", "ana@other.example"):
        assert enrollment_of(session, email).state == "active", email


def test_a_weakly_matched_positive_reply_stops_its_enrollment_but_not_the_account(session, clock, settings, runtime,
                                                                                 smtp):
    first, _ = send_first_email(session, clock, runtime, smtp, DANA, LEE)

    result = ingest_raw(session, clock.now(), settings,
                        reply(first, "Yes, interested - let's talk next week.", in_reply_to=False))

    assert result.message.detail["match"]["strength"] == "weak"
    assert enrollment_of(session, DANA).state == "stopped"
    assert enrollment_of(session, LEE).state == "active"
    kinds = {d.kind for d in session.exec(select(Decision).where(Decision.rule == "builtin.reply.positive"))}
    assert "account_not_stopped" in kinds


def test_a_positive_reply_from_a_prospect_at_a_public_suffix_stops_only_that_enrollment(
        session, clock, settings, runtime, smtp):
    first, _, _ = send_first_email(session, clock, runtime, smtp, "pat@co.uk", "kim@acme.co.uk", "lou@co.uk")

    ingest_raw(session, clock.now(), settings, reply(first, "Yes, interested - let's talk next week."))

    assert enrollment_of(session, "pat@co.uk").state == "stopped"
    assert enrollment_of(session, "kim@acme.co.uk").state == "active"
    assert enrollment_of(session, "lou@co.uk").state == "active"


def test_a_threaded_positive_reply_from_a_colleague_still_stops_the_account(session, clock, settings, runtime, smtp):
    first, _, _ = send_first_email(session, clock, runtime, smtp, DANA, LEE, "ana@other.example")

    ingest_raw(session, clock.now(), settings, reply(first, "Yes, interested - let's talk.", sender="x@%"))

    assert enrollment_of(session, DANA).state == enrollment_of(session, LEE).state == "stopped"
    assert enrollment_of(session, "ana@other.example").state == "active"


# --- 4. unsubscribe requests by reply -----------------------------------------------------------

def test_an_unsubscribe_request_that_names_no_touch_suppresses_no_one(session, clock, settings, runtime, smtp):
    send_first_email(session, clock, runtime, smtp, DANA)

    stranger = ingest_raw(session, clock.now(), settings,
                          letter("stranger@elsewhere.example", "remove", "Please unsubscribe me."))
    forged = ingest_raw(session, clock.now(), settings, letter(DANA, "Unsubscribe", "Please unsubscribe me."))

    assert stranger.message.kind == forged.message.kind == "unsubscribe_request"
    assert "not acted on" in stranger.action and "not acted on" in forged.action
    assert suppressed(session) == {}
    assert enrollment_of(session, DANA).state == "active"
    assert len(not_acted(session, DANA)) == 1


def test_an_unsubscribe_from_a_colleague_in_the_thread_suppresses_the_address_the_touch_went_to(
        session, clock, settings, runtime, smtp):
    first, = send_first_email(session, clock, runtime, smtp, DANA)

    ingest_raw(session, clock.now(), settings, reply(first, "Please unsubscribe me.", sender=LEE))

    assert suppressed(session) == {DANA: "unsubscribed"}
    assert enrollment_of(session, DANA).state == "stopped"


@pytest.mark.parametrize("threaded", [True, False], ids=["in-reply-to", "same-sender-and-subject"])
def test_an_unsubscribe_from_the_address_we_mailed_acts(session, clock, settings, runtime, smtp, threaded):
    first, = send_first_email(session, clock, runtime, smtp, DANA)

    ingest_raw(session, clock.now(), settings, reply(first, "Please unsubscribe me.", in_reply_to=threaded))

    assert suppressed(session) == {DANA: "unsubscribed"}
    assert enrollment_of(session, DANA).state == "stopped"


# --- the same through `sequencer inbound ingest` over an mbox --------------------------------------

def test_forged_mail_ingested_from_an_mbox_by_the_cli_changes_nothing(session, clock, settings, runtime, smtp,
                                                                      tmp_path, monkeypatch):
    first, _ = send_first_email(session, clock, runtime, smtp, DANA, LEE)
    path = tmp_path / "forged.mbox"
    box = mailbox.mbox(str(path))
    for raw in [*(bounce(f"sam+t{first.touch_id}@outreach-acme.example", DANA, "5.7.1", BLOCKED,
                         original_id=NOT_OURS) for _ in range(5)),
                bounce(OUR_MAILBOX, DANA, "5.1.1", "550 5.1.1 user unknown", original_id=NOT_OURS),
                complaint(DANA, original_id=NOT_OURS),
                letter("x@%", "Re: Hello Dana", "Yes, interested - let's talk."),
                letter("a@co.uk", "Re: Hello Dana", "Yes, interested - let's talk."),
                letter(DANA, "Unsubscribe", "Please unsubscribe me.")]:
        box.add(raw)
    box.close()
    monkeypatch.chdir(tmp_path)
    env = {"SEQUENCER_DATABASE_URL": settings.database_url, "SEQUENCER_SECRET_KEY": settings.secret_key,
           "COLUMNS": "250"}

    result = CliRunner().invoke(cli, ["inbound", "ingest", str(path)], env=env)

    assert result.exit_code == 0, result.output
    assert result.output.count("not acted on") == 10, result.output
    assert count(session, InboundMessage) == 10
    assert suppressed(session) == {}
    assert not any(m.paused for m in session.exec(select(Mailbox)))
    assert enrollment_of(session, DANA).state == enrollment_of(session, LEE).state == "active"
    shown = CliRunner().invoke(cli, ["explain", DANA], env=env)
    assert shown.exit_code == 0 and shown.output.count("not_acted") >= 7, shown.output
