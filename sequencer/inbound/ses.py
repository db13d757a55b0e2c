"""Amazon SES bounce and complaint notifications that arrive by email, as JSON.

SES publishes feedback to an SNS topic; an email subscription delivers it as a plain-text
message whose body is the notification JSON ("email" protocol, followed by an unsubscribe
footer) or the whole SNS envelope with the notification as its ``Message`` string
("email-json"). Event publishing writes ``eventType`` where notifications write
``notificationType``. Fields as AWS documents them ("Amazon SNS notification contents for
Amazon SES"): ``bounce.bounceType`` Permanent / Transient / Undetermined, ``bounceSubType``,
``bouncedRecipients[].status`` / ``diagnosticCode``; ``complaint.complainedRecipients`` and
``complaintFeedbackType``; ``mail.commonHeaders.messageId`` is our Message-ID.

Trust: anyone can mail us JSON that looks like this, as anyone can forge a DSN. What it says
is the sender's claim; it acts only when its Message-ID matches a touch we sent
(``sequencer.inbound.evidence``). The body is bounded before it is decoded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sequencer.inbound.parse import ParsedMessage, message_ids

MAX_JSON_CHARS = 200_000  # an SES notification with full headers is a few kB; more is not one
_DECODER = json.JSONDecoder()
# SES subtypes that decide the reason on their own; the others are read from status and diagnostic.
_SUBTYPE_REASONS = {
    "NoEmail": ("user_unknown", "SES: the address does not exist (NoEmail)"),
    "Suppressed": ("user_unknown", "SES suppressed it: a recent history of bouncing as an invalid address"),
    "OnAccountSuppressionList": ("user_unknown", "on our SES account-level suppression list"),
    "MailboxFull": ("mailbox_full", "SES: the mailbox is full"),
    "ContentRejected": ("content_filtered", "SES: the receiver rejected the content"),
}
_OUR_MESSAGE = {  # subtypes about the message we sent, as a refusal at send time would be
    "MessageTooLarge": ("message_too_big", "our message was refused: too large for the receiver (SES)"),
    "AttachmentRejected": ("content_filtered", "our message was refused: an attachment was not accepted (SES)"),
}


@dataclass(frozen=True)
class SesNotification:
    """A notification SES sent about one message of ours."""

    kind: str  # "Bounce" or "Complaint"
    body: dict
    mail: dict
    recipients: list[dict]

    @property
    def original_message_id(self) -> str | None:
        common = self.mail.get("commonHeaders")
        value = common.get("messageId") if isinstance(common, dict) else None
        if not isinstance(value, str):
            value = next((h.get("value") for h in self.mail.get("headers") or [] if isinstance(h, dict)
                          and str(h.get("name", "")).lower() == "message-id"), None)
        ids = message_ids(value) if isinstance(value, str) else []
        return ids[0] if ids else None

    @property
    def addresses(self) -> list[str]:
        return [str(r["emailAddress"]).lower()[:320] for r in self.recipients if isinstance(r.get("emailAddress"), str)]


def _json_at(text: str) -> dict | None:
    """The JSON object the text starts with (a footer may follow), or None."""
    start = text.find("{")
    if start < 0 or start > 1000:
        return None
    try:
        value, _ = _DECODER.raw_decode(text, start)
    except ValueError:  # JSONDecodeError, and RecursionError is not raised below the size bound
        return None
    return value if isinstance(value, dict) else None


def notification(parsed: ParsedMessage) -> SesNotification | None:
    """The SES bounce or complaint notification this message carries, else None."""
    text = parsed.body_text[:MAX_JSON_CHARS]
    if '"notificationType"' not in text and '"eventType"' not in text and '"Message"' not in text:
        return None  # cheap test first: almost no mail is JSON
    data = _json_at(text)
    if data is not None and data.get("Type") == "Notification" and isinstance(data.get("Message"), str):
        data = _json_at(data["Message"][:MAX_JSON_CHARS])  # the email-json envelope
    if data is None:
        return None
    kind = data.get("notificationType") or data.get("eventType")
    key = {"Bounce": "bounce", "Complaint": "complaint"}.get(kind) if isinstance(kind, str) else None
    body, mail = (data.get(key), data.get("mail")) if key else (None, None)
    if not isinstance(body, dict) or not isinstance(mail, dict):
        return None
    listed = body.get("bouncedRecipients" if key == "bounce" else "complainedRecipients")
    recipients = [r for r in listed[:100] if isinstance(r, dict)] if isinstance(listed, list) else []
    return SesNotification(kind, body, mail, recipients)


def subtype_reading(bounce_type: str, subtype: str) -> tuple[str, str, bool] | None:
    """(reason, why, about_our_message) when the SES bounce subtype decides the reason alone."""
    if subtype in _OUR_MESSAGE:
        return (*_OUR_MESSAGE[subtype], True)
    if subtype in _SUBTYPE_REASONS:
        return (*_SUBTYPE_REASONS[subtype], False)
    if bounce_type == "Undetermined":
        return "unknown", "SES could not determine the reason (Undetermined)", False
    return None
