"""IMAP to engine, end to end: a real Dovecot mailbox is polled, every message is ingested,
and the stop rules act on enrollments that got a real first email over SMTP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from engine_support import enrollment_of, prepare, write_templates
from imapclient import IMAPClient
from inbound_support import GARBAGE, count, dsn, out_of_office, reply, send_first_email
from sqlmodel import select

from channels.email import SmtpSender
from sequencer.app.wiring import build as build_runtime
from sequencer.core.models import Decision, InboundMessage, Mailbox
from sequencer.inbound.imap_poll import ImapSettings, imap_connector, poll_mailbox
from sequencer.inbound.ingest import ingest_raw
from suppression.models import SuppressionEntry

if TYPE_CHECKING:
    from imap_server import ImapAccount

pytest_plugins = ["imap_server"]  # the dovecot / imap_server fixtures

PEOPLE = ("dana@northwind.example", "lee@bounce.example", "kim@away.example")


def deliver(account: ImapAccount, *messages: bytes) -> None:
    """Put messages into the account's INBOX the way an MTA would (IMAP APPEND)."""
    with IMAPClient(account.host, port=account.port, ssl=False) as client:
        client.login(account.user, account.password)
        for raw in messages:
            client.append("INBOX", raw)


def test_a_polled_mailbox_stops_suppresses_quarantines_and_pauses(
        tmp_path, session, clock, settings, smtp, imap_server: ImapAccount):
    prepare(session, clock.now(), settings, write_templates(tmp_path / "templates"))
    sender = SmtpSender(timeout=5)
    try:
        runtime = build_runtime(settings, sender, check_domains=False)
        dana, lee, kim = send_first_email(session, clock, runtime, smtp, *PEOPLE)
    finally:
        sender.close()
    deliver(imap_server,
            reply(dana, "Not interested, thanks."),
            dsn(lee, "5.1.1", f"550 5.1.1 <{lee.to}>: Recipient address rejected: User unknown"),
            GARBAGE,
            out_of_office(kim, "I am out of the office and will return on Monday, January 11, 2027."))
    mailbox = session.exec(select(Mailbox).where(Mailbox.address == "sam@outreach-acme.example")).one()
    connect = imap_connector(ImapSettings(imap_server.host, imap_server.port, False, imap_server.user,
                                          imap_server.password), timeout=5)

    def ingest(raw: bytes) -> object:
        return ingest_raw(session, clock.now(), settings, raw)

    result = poll_mailbox(session, mailbox, connect, ingest)

    assert (result.fetched, result.ingested, result.failed) == (4, 4, 0)
    session.expire_all()
    assert enrollment_of(session, dana.to).state == "stopped"
    assert enrollment_of(session, lee.to).state == "stopped"
    assert session.exec(select(SuppressionEntry.value, SuppressionEntry.reason)).all() == [(lee.to, "hard_bounce")]
    kim_enrollment = enrollment_of(session, kim.to)
    assert kim_enrollment.state == "paused" and kim_enrollment.rule == "builtin.out_of_office"
    assert kim_enrollment.paused_until.date().isoformat() == "2027-01-12"
    quarantined = session.exec(select(InboundMessage).where(InboundMessage.quarantined)).one()
    assert "no RFC 5322 header fields" in quarantined.detail["reason"]
    assert quarantined.detail["size"] >= len(GARBAGE)  # the server stores bare LF as CRLF
    stored, decided = count(session, InboundMessage), count(session, Decision)

    again = poll_mailbox(session, mailbox, connect, ingest)

    assert (again.fetched, again.ingested, again.failed) == (0, 0, 0)
    assert count(session, InboundMessage) == stored and count(session, Decision) == decided


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_message_that_breaks_the_handler_is_quarantined_and_the_batch_goes_on(
        tmp_path, session, clock, settings, smtp, imap_server: ImapAccount, monkeypatch):
    from sequencer.inbound import ingest

    prepare(session, clock.now(), settings, write_templates(tmp_path / "templates"))
    sender = SmtpSender(timeout=5)
    try:
        runtime = build_runtime(settings, sender, check_domains=False)
        dana, lee, _ = send_first_email(session, clock, runtime, smtp, *PEOPLE)
    finally:
        sender.close()
    real_apply = ingest.apply

    def apply_failing_for_lee(session, now, rules, event):
        if event.address == lee.to:
            raise RuntimeError("rule store unavailable")
        return real_apply(session, now, rules, event)

    monkeypatch.setattr(ingest, "apply", apply_failing_for_lee)
    deliver(imap_server, reply(lee, "Not interested."), reply(dana, "Not interested."))
    mailbox = session.exec(select(Mailbox).where(Mailbox.address == "sam@outreach-acme.example")).one()
    connect = imap_connector(ImapSettings(imap_server.host, imap_server.port, False, imap_server.user,
                                          imap_server.password), timeout=5)

    result = poll_mailbox(session, mailbox, connect, lambda raw: ingest_raw(session, clock.now(), settings, raw))

    assert (result.fetched, result.ingested, result.failed) == (2, 2, 0)
    quarantined = session.exec(select(InboundMessage).where(InboundMessage.quarantined)).one()
    assert quarantined.detail["reason"] == "handling failed: RuntimeError: rule store unavailable"
    assert enrollment_of(session, lee.to).state == "active", "nothing half-done was kept"
    assert enrollment_of(session, dana.to).state == "stopped"
