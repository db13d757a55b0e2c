"""Spam complaints delivered as RFC 5965 feedback reports (ARF).

Mailbox providers (Yahoo, AOL, Microsoft JMRP, Comcast...) send one of these
when a recipient presses "this is spam". A complaint must suppress the recipient
at once and counts against the sending domain, so it is checked before anything
else. The complained recipient is taken from ``Original-Rcpt-To`` when present;
providers often redact it, so the To of the attached original is the fallback,
and the original Message-ID lets the engine find the touch either way.
"""

from __future__ import annotations

import email
import email.message
import re
from dataclasses import dataclass, field
from email.utils import parseaddr

from sequencer.inbound.bounces import is_daemon_sender
from sequencer.inbound.original import attached_original, original_message_id
from sequencer.inbound.parse import ParsedMessage, decode_header_value
from sequencer.inbound.ses import notification


@dataclass(frozen=True)
class ComplaintReport:
    """A recognised feedback report and what it says."""

    feedback_type: str
    complained_recipient: str | None
    original_mail_from: str | None
    original_message_id: str | None
    evidence: list[str] = field(default_factory=list)


def _feedback_fields(message: email.message.Message) -> email.message.Message | None:
    for part in message.walk():
        if part.get_content_type() != "message/feedback-report":
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], email.message.Message):
            return payload[0]
        if isinstance(payload, str):
            return email.message_from_string(payload.lstrip())
    return None


def _address(value: str) -> str | None:
    _, addr = parseaddr(value)
    addr = addr.strip().lower()
    return addr if "@" in addr else None


def detect_complaint(parsed: ParsedMessage) -> ComplaintReport | None:
    """A ComplaintReport for an ARF feedback report, else None.

    Recognised by ``multipart/report; report-type=feedback-report`` or, for
    senders that get the report-type wrong, by a ``message/feedback-report`` part.
    """
    message = parsed.message
    is_report = message.get_content_type() == "multipart/report"
    report_type = (message.get_param("report-type") or "").lower() if is_report else ""
    fields = _feedback_fields(message) if message.is_multipart() else None
    if report_type != "feedback-report" and fields is None:
        return _forwarded_complaint(parsed) or _ses_complaint(parsed)
    evidence = ["multipart/report; report-type=feedback-report"]
    feedback_type = "abuse"
    rcpt = mail_from = None
    if fields is not None:
        feedback_type = decode_header_value(fields.get("Feedback-Type")).lower() or "abuse"
        evidence.append(f"Feedback-Type: {feedback_type}")
        rcpt = _address(decode_header_value(fields.get("Original-Rcpt-To")))
        if rcpt is None:
            rcpt = _address(decode_header_value(fields.get("Removal-Recipient")))
        mail_from = _address(decode_header_value(fields.get("Original-Mail-From")))
        agent = decode_header_value(fields.get("User-Agent"))
        if agent:
            evidence.append(f"reported by {agent[:60]}")
    if rcpt is None:
        original = attached_original(message)
        if original is not None:
            rcpt = _address(decode_header_value(original.get("To")))
    return ComplaintReport(
        feedback_type=feedback_type,
        complained_recipient=rcpt,
        original_mail_from=mail_from,
        original_message_id=original_message_id(message, parsed.body_text),
        evidence=evidence,
    )


_ABUSE_SENDER = re.compile(r"^(?:abuse|spam|complaints?|fbl|feedback|postmaster|security|phish\w*|report-?spam)\b",
                           re.IGNORECASE)
_COMPLAINT_WORDS = re.compile(
    r"\bspam\b|spamcop|offending message|unsolicited|\babuse\b|complain|"
    r"reported as (?:junk|spam)|junk mail|phishing|unwanted|"
    r"did not (?:sign up|subscribe|opt.?in)|never (?:signed up|subscribed|opted in)|"
    r"unerw[üu]nscht|ind[ée]sirable|no deseado|non richiesto|ongewenst",
    re.IGNORECASE,
)
MAX_COVER_WORDS = 400  # an abuse desk's cover note is short; a long text is someone writing to us


def _forwarded_complaint(parsed: ParsedMessage) -> ComplaintReport | None:
    """An abuse desk's (or a recipient's) report that is not ARF: a short note calling it spam,
    with our message attached as message/rfc822. Both must be there, so a colleague forwarding
    our mail with "see below" is not a complaint."""
    message = parsed.message
    if message.get_content_type() == "multipart/report" or is_daemon_sender(parsed) or parsed.return_path == "":
        return None  # a DSN returns our message too: that is a bounce
    original = attached_original(message)
    if original is None or original.get("Message-ID") is None or not _attached_as_message(message):
        return None
    note = f"{parsed.subject}\n{parsed.body_text[:5000]}"
    words = _COMPLAINT_WORDS.search(note)
    sender = (parsed.from_address or "").split("@", 1)[0]
    if words is None or len(parsed.body_text.split()) > MAX_COVER_WORDS:
        return None
    evidence = [f"our message attached as message/rfc822 with a complaint: {words.group(0)!r}"]
    if _ABUSE_SENDER.match(sender):
        evidence.append(f"sent by an abuse desk: {parsed.from_address}")
    return ComplaintReport(
        feedback_type="abuse",
        complained_recipient=_address(decode_header_value(original.get("To"))),
        original_mail_from=None,
        original_message_id=original_message_id(parsed.message, parsed.body_text),
        evidence=evidence,
    )


def _ses_complaint(parsed: ParsedMessage) -> ComplaintReport | None:
    """An Amazon SES complaint notification (JSON by email, ``sequencer.inbound.ses``); "not-spam" is none."""
    ses = notification(parsed) if parsed.message.get_content_maintype() == "text" else None
    if ses is None or ses.kind != "Complaint":
        return None
    feedback_type = str(ses.body.get("complaintFeedbackType") or "abuse").lower()[:40]
    if feedback_type == "not-spam":
        return None
    agent = str(ses.body.get("userAgent") or "")[:60]
    return ComplaintReport(
        feedback_type=feedback_type,
        complained_recipient=(ses.addresses or [None])[0],
        original_mail_from=None,
        original_message_id=ses.original_message_id,
        evidence=["Amazon SES complaint notification", f"complaintFeedbackType: {feedback_type}"]
        + ([f"reported by {agent}"] if agent else []),
    )


def _attached_as_message(message: email.message.Message) -> bool:
    return any(part.get_content_type() == "message/rfc822" for part in message.walk())
