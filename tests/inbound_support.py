"""Inbound messages that answer a touch the engine really sent.

Every builder starts from what the loopback SMTP server received (``smtp.messages[i]``):
its Message-ID is what a mail client puts in In-Reply-To / References, and its envelope
sender (``sam+t<touch id>-<mac>@outreach-acme.example``, signed by channels.verp) is where a
bounce goes back to. So a test that matches a reply is matching against the same ids a real
recipient would see.

Plain functions returning raw bytes; the tests feed them to ``ingest_raw``, the CLI, the
HTTP endpoint or a Dovecot mailbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from engine_support import add_prospect, fire
from sqlmodel import Session, func, select

from channels import verp
from sequencer.core.clock import Clock
from sequencer.engine.runtime import Runtime
from sequencer.engine.tick import tick
from sequencer.loopback.smtp_server import LocalSmtpServer, Received

OUR_MAILBOX = "sam@outreach-acme.example"


@dataclass(frozen=True)
class Sent:
    """One message as the SMTP server got it: what replies and bounces refer to."""

    message_id: str  # with angle brackets, as in the header
    subject: str
    to: str
    envelope_from: str  # the VERP return path, sam+t<touch id>-<mac>@...
    touch_id: int | None = None  # read back from it by channels.verp, when the secret was given


def sent(received: Received, secret: str = "") -> Sent:
    """What a recipient sees of one delivery; with ``secret``, the touch id its return path names."""
    message = message_from_bytes(received.content, policy=policy.default)
    return Sent(str(message["Message-ID"]), str(message["Subject"]), received.rcpt_tos[0], received.mail_from,
                verp.touch_id_in_address(received.mail_from, secret) if secret else None)


def send_first_email(session: Session, clock: Clock, runtime: Runtime, smtp: LocalSmtpServer,
                     *emails: str, **fields: object) -> list[Sent]:
    """Given prospects enrolled by a signal, when the engine ticks, each gets its first email."""
    for email in emails:
        add_prospect(session, clock.now(), email, **fields)
        fire(session, clock.now(), "intent_surge", email=email, score=80)
    before = len(smtp.messages)
    tick(session, clock, runtime)
    assert len(smtp.messages) == before + len(emails), "every prospect should have had the first email"
    return [sent(received, runtime.settings.secret_key) for received in smtp.messages[before:]]


def count(session: Session, model: type) -> int:
    return session.exec(select(func.count()).select_from(model)).one()


def _message(sender: str, to: str, subject: str, when: datetime | None, message_id: str | None = None,
             **headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(when) if when else "Mon, 30 Nov 2026 16:00:00 +0000"
    message["Message-ID"] = message_id or make_msgid(domain=sender.rpartition("@")[2].rstrip(">"))
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    return message


def reply(to: Sent, body: str, *, sender: str | None = None, subject: str | None = None,
          in_reply_to: bool = True, references: list[str] | None = None, when: datetime | None = None,
          message_id: str | None = None) -> bytes:
    """A person's answer. By default threaded by In-Reply-To and References like any client."""
    headers = {}
    if in_reply_to:
        headers["In_Reply_To"] = to.message_id
    refs = [to.message_id] if references is None and in_reply_to else (references or [])
    if refs:
        headers["References"] = " ".join(refs)
    message = _message(sender or to.to, OUR_MAILBOX, subject if subject is not None else f"Re: {to.subject}",
                       when, message_id, **headers)
    message.set_content(f"{body}\n\nOn Mon, Sam Rivera <{OUR_MAILBOX}> wrote:\n> Hi there,\n> {to.subject}\n")
    return bytes(message)


def out_of_office(to: Sent, body: str, *, when: datetime | None = None, language: str = "en") -> bytes:
    """An automatic out-of-office answer, threaded to the touch, with the usual auto headers."""
    prefix = {"de": "Automatische Antwort", "en": "Automatic reply"}[language]
    message = _message(to.to, OUR_MAILBOX, f"{prefix}: {to.subject}", when, In_Reply_To=to.message_id,
                       Auto_Submitted="auto-replied", X_Auto_Response_Suppress="All",
                       Content_Language="de-DE" if language == "de" else "en-US")
    message.set_content(body)
    return bytes(message)


def _report(sender: str, to: str, subject: str, when: datetime | None, report_type: str,
            parts: list[tuple[str, str]]) -> bytes:
    """A multipart/report written out by hand, the way MTAs and feedback loops produce them."""
    boundary = "=_report_" + make_msgid().strip("<>").split("@")[0].replace(".", "_")
    date = format_datetime(when) if when else "Mon, 30 Nov 2026 16:00:00 +0000"
    head = (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n"
        f"Message-ID: {make_msgid(domain=sender.rpartition('@')[2].rstrip('>'))}\r\n"
        f"Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type={report_type}; boundary="{boundary}"\r\n\r\n'
    )
    body = "".join(f"--{boundary}\r\nContent-Type: {ctype}\r\n\r\n{text.replace(chr(10), chr(13) + chr(10))}\r\n"
                   for ctype, text in parts)
    return (head + body + f"--{boundary}--\r\n").encode()


def dsn(to: Sent, status: str, diagnostic: str, *, action: str = "failed", when: datetime | None = None,
        recipient: str | None = None) -> bytes:
    """An RFC 3464 delivery status notification with the original headers attached."""
    recipient = recipient or to.to
    notice = f"Your message could not be delivered to {recipient}.\n\n{diagnostic}\n"
    status_fields = (
        f"Reporting-MTA: dns; mx1.outreach-acme.example\n\nFinal-Recipient: rfc822; {recipient}\n"
        f"Action: {action}\nStatus: {status}\nDiagnostic-Code: smtp; {diagnostic}\n"
    )
    original = (
        f"Return-Path: <{to.envelope_from}>\nFrom: Sam Rivera <{OUR_MAILBOX}>\nTo: {recipient}\n"
        f"Subject: {to.subject}\nMessage-ID: {to.message_id}\n"
    )
    return _report("MAILER-DAEMON@mx1.outreach-acme.example", to.envelope_from, "Undelivered Mail Returned to Sender",
                   when, "delivery-status", [("text/plain; charset=us-ascii", notice),
                                             ("message/delivery-status", status_fields),
                                             ("text/rfc822-headers", original)])


def verp_only_bounce(to: Sent, diagnostic: str = "Sorry, no mailbox here by that name. (#5.1.1)",
                     *, when: datetime | None = None) -> bytes:
    """A qmail-style bounce with no original Message-ID anywhere: only the return path says
    which touch it is about (To / X-Original-To carry ``sam+t<id>@...``)."""
    message = _message("MAILER-DAEMON@mail.oldhost.example", to.envelope_from, "failure notice", when,
                       X_Original_To=to.envelope_from, Return_Path="<>")
    message.set_content(
        "Hi. This is the qmail-send program at mail.oldhost.example.\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
        f"<{to.to}>:\n{diagnostic}\n"
    )
    return bytes(message)


def arf_complaint(to: Sent, *, when: datetime | None = None) -> bytes:
    """An RFC 5965 abuse report from a mailbox provider with the original message attached."""
    notice = "This is an email abuse report for a message from IP 203.0.113.5.\n"
    feedback = (
        f"Feedback-Type: abuse\nUser-Agent: Feedback/2.0\nVersion: 1\n"
        f"Original-Mail-From: <{to.envelope_from}>\nOriginal-Rcpt-To: <{to.to}>\nSource-IP: 203.0.113.5\n"
    )
    original = (
        f"Return-Path: <{to.envelope_from}>\nFrom: Sam Rivera <{OUR_MAILBOX}>\nTo: {to.to}\n"
        f"Subject: {to.subject}\nMessage-ID: {to.message_id}\n\nHi, a quick question.\n"
    )
    return _report("Mail AntiSpam Feedback <feedback@arf.mail.example>", "fbl@outreach-acme.example",
                   f"FW: {to.subject}", when, "feedback-report", [("text/plain; charset=us-ascii", notice),
                                                                  ("message/feedback-report", feedback),
                                                                  ("message/rfc822", original)])


GARBAGE = bytes(range(256)) * 64  # binary noise: no header fields at all
TRUNCATED = b"From: dana@northwind.example\r\nSubj"  # cut off in the middle of the header
MISENCODED = (  # declares UTF-8, is Latin-1, and has no sender at all
    b"Subject: Gr\xfc\xdfe\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nK\xf6nnen wir reden?\r\n"
)
