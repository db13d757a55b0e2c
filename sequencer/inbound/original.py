"""Find the message a bounce or complaint is about.

DSNs (RFC 3464) and feedback reports (RFC 5965) carry the original message as a
``message/rfc822`` part or just its header block as ``text/rfc822-headers``;
many non-standard MTAs paste the original headers into the body text instead.
Its Message-ID is what lets the engine match the report to the touch we sent,
even when the bounced address was rewritten or forwarded.
"""

from __future__ import annotations

import email
import email.message
import re

from sequencer.inbound.parse import MAIL_ERRORS, decode_header_value, message_ids

_PASTED_MSGID = re.compile(r"^\s*Message-ID:\s*(<[^<>\s]{1,500}>)", re.IGNORECASE | re.MULTILINE)


def attached_original(message: email.message.Message) -> email.message.Message | None:
    """The original message (or its headers) attached to a report, if any.

    ``message/rfc822`` wins over ``text/rfc822-headers`` because it carries more;
    the first one found in document order is used.
    """
    headers_only: email.message.Message | None = None
    for part in message.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            payload = part.get_payload()
            if (
                isinstance(payload, list)
                and payload
                and isinstance(payload[0], email.message.Message)
            ):
                return payload[0]
        elif ctype == "text/rfc822-headers" and headers_only is None:
            headers_only = _headers_from_text(part)
    return headers_only


def _headers_from_text(part: email.message.Message) -> email.message.Message | None:
    try:
        payload = part.get_payload(decode=True)
    except MAIL_ERRORS:
        payload = None
    if not isinstance(payload, bytes):
        text = part.get_payload()
        payload = text.encode("utf-8", "replace") if isinstance(text, str) else b""
    if not payload.strip():
        return None
    return email.message_from_bytes(payload.lstrip())


def original_message_id(message: email.message.Message, body_text: str) -> str | None:
    """Message-ID of the original message, from an attachment or pasted headers.

    The pasted-header fallback only looks at the decoded body text of the report
    itself, so the report's own Message-ID header is never mistaken for it.
    """
    original = attached_original(message)
    if original is not None:
        ids = message_ids(decode_header_value(original.get("Message-ID")))
        if ids:
            return ids[0]
    match = _PASTED_MSGID.search(body_text)
    if match:
        ids = message_ids(match.group(1))
        return ids[0] if ids else None
    return None
