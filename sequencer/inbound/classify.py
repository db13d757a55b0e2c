"""One decision per inbound message: what is it, and the facts the engine needs.

``classify`` is total: whatever bytes arrive, it returns a Classification, and
input it cannot read comes back as ``kind="unparseable"`` with a ``reason`` so
the caller can quarantine it. A bug in the classifier itself is quarantined the
same way but is never mistaken for bad input: ``error`` then names the exception.
The checks run in a fixed order because the signals overlap:

1. unparseable input;
2. complaint (ARF) and bounce (DSN or non-standard) - before the auto-reply
   headers, since DSNs carry a null Return-Path and Auto-Submitted too;
3. automatic mail: "left the company" notices first (they are often
   auto-replies and carry a referral), then out-of-office, then generic auto-reply;
4. human mail: unsubscribe request, then "left the company", then a reply with
   its sentiment.

A calendar RSVP (an iTIP ``METHOD:REPLY`` in a text/calendar part, RFC 6047) is
``calendar_reply`` and is looked for after bounces and complaints (a DSN can quote one)
and before the auto-reply checks (calendar clients send RSVPs automatically).

Every step appends short ``evidence`` strings so a later "why did this stop?"
can be answered from the stored classification alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from channels import verp
from sequencer.inbound.autoreply import detect_auto_reply
from sequencer.inbound.bounces import detect_bounce
from sequencer.inbound.complaints import detect_complaint
from sequencer.inbound.language import guess_language
from sequencer.inbound.parse import MAX_PARSE_BYTES, ParsedMessage, _own_parts, parse_message
from sequencer.inbound.quoting import strip_quoted
from sequencer.inbound.replies import (
    automated_opt_out,
    left_company_phrase,
    new_contacts,
    sentiment,
    unsubscribe_phrase,
)
from sequencer.inbound.return_date import find_return_date, prefers_day_first
from sequencer.meetings.ical import read_reply

Kind = Literal[
    "reply",
    "auto_reply",
    "out_of_office",
    "bounce",
    "complaint",
    "unsubscribe_request",
    "left_company",
    "calendar_reply",
    "unparseable",
]

_KNOWN_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "subject",
        "date",
        "message-id",
        "received",
        "return-path",
        "mime-version",
        "content-type",
        "delivered-to",
        "reply-to",
        "sender",
        "in-reply-to",
        "references",
        "x-original-to",
        "auto-submitted",
    }
)
NO_SENDER = "no sender: From, Sender and Return-Path are all missing"
_CUT_DEFECTS = frozenset({"CloseBoundaryNotFoundDefect", "StartBoundaryNotFoundDefect"})


@dataclass
class Classification:
    """The classifier's answer. Fields not relevant to ``kind`` stay empty/None.

    Always set: kind, evidence, truncated, defects and the pass-through ids
    (message_id, in_reply_to, references, from_address, subject, date,
    verp_token) the matcher uses to find the enrollment.
    """

    kind: Kind
    evidence: list[str] = field(default_factory=list)
    reason: str | None = None
    message_id: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    from_address: str | None = None
    subject: str = ""
    date: datetime | None = None
    verp_token: str | None = None
    truncated: bool = False
    defects: list[str] = field(default_factory=list)
    language: str | None = None
    sentiment: Literal["positive", "negative", "neutral"] | None = None
    reply_text: str | None = None
    bounce_type: Literal["hard", "soft", "block"] | None = None
    bounce_reason: str | None = None  # the taxonomy's reason (sequencer.inbound.reasons)
    status_code: str | None = None
    about_our_message: bool = False  # a bounce of our message itself (too big, syntax, content), not of the person
    diagnostic: str | None = None
    bounced_recipients: list[str] = field(default_factory=list)
    original_message_id: str | None = None
    return_date: date | None = None
    new_contacts: list[str] = field(default_factory=list)
    complained_recipient: str | None = None
    feedback_type: str | None = None
    # an RSVP (kind calendar_reply): the REPLY's UID, the attendee answering, their PARTSTAT, the SEQUENCE answered
    calendar_uid: str | None = None
    calendar_attendee: str | None = None
    calendar_partstat: str | None = None
    calendar_sequence: int | None = None
    # set only when the classifier itself crashed ("TypeError: ..."): the input may be fine
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: dates and datetimes become ISO 8601 strings."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, (date, datetime)):
                out[key] = value.isoformat()
        return out


def classify(raw: bytes, *, our_domains: frozenset[str] = frozenset()) -> Classification:
    """Classify one raw inbound message. Never raises.

    ``our_domains`` are our own sending/receiving domains: their addresses are
    never reported as new contacts, and only plus-addresses in them yield a
    ``verp_token`` (any domain when empty).
    """
    try:
        return _classify(raw, frozenset(d.lower() for d in our_domains))
    except Exception as exc:
        # quarantined like unreadable input, but ``error`` says it was our crash, not the bytes
        error = f"{type(exc).__name__}: {str(exc)[:200]}"
        return Classification(
            kind="unparseable",
            reason=f"classifier error: {type(exc).__name__}",
            evidence=[error],
            error=error,
        )


def _unreadable(raw: bytes, parsed: ParsedMessage) -> str | None:
    if not raw.strip():
        return "empty input"
    names = {name.lower() for name in parsed.headers}
    if not names & _KNOWN_HEADERS:
        return "no RFC 5322 header fields found (not an email message)"
    header_end = raw.find(b"\n\n")
    head = raw[: header_end if header_end >= 0 else 64 * 1024]
    if b"\x00" in head:
        return "NUL bytes in the header section (binary data)"
    if not (parsed.from_address or parsed.return_path is not None or "sender" in names):
        return NO_SENDER
    return None


def _verp_token(parsed: ParsedMessage, our_domains: frozenset[str]) -> str | None:
    h = parsed.headers
    values = h.get_all("delivered-to") + h.get_all("x-original-to") + h.get_all("to")
    if not any("+" in value for value in values):
        return None  # no plus-address, no token: skips parsing the addresses again
    return verp.token_in(h.get_all("delivered-to") + h.get_all("x-original-to") + h.get_all("to"), our_domains)


def _base(raw: bytes, parsed: ParsedMessage, our_domains: frozenset[str]) -> Classification:
    result = Classification(
        kind="reply",
        message_id=parsed.message_id,
        in_reply_to=parsed.in_reply_to,
        references=parsed.references,
        from_address=parsed.from_address,
        subject=parsed.subject[:500],
        date=parsed.date,
        verp_token=_verp_token(parsed, our_domains),
        truncated=parsed.truncated,
        defects=parsed.defects[:20],
    )
    if parsed.truncated:
        result.evidence.append(
            f"input is {len(raw)} bytes; classified from the first {MAX_PARSE_BYTES} bytes"
        )
    cut = _CUT_DEFECTS.intersection(parsed.defects)
    if cut:
        result.evidence.append("MIME structure incomplete: " + ", ".join(sorted(cut)))
    return result


def _classify(raw: bytes, our_domains: frozenset[str]) -> Classification:
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        return Classification(
            kind="unparseable", reason=f"expected bytes, got {type(raw).__name__}"
        )
    raw = bytes(raw)
    parsed = parse_message(raw)
    problem = _unreadable(raw[:MAX_PARSE_BYTES], parsed)
    complaint = bounce = None
    if problem == NO_SENDER:
        complaint = detect_complaint(parsed)
        bounce = None if complaint else detect_bounce(parsed)
        if complaint or bounce:
            problem = None  # some MTAs send DSNs with only Received, To, Subject and the report: still a bounce
    if problem is not None:
        return Classification(
            kind="unparseable", reason=problem, evidence=[problem], truncated=parsed.truncated
        )
    result = _base(raw, parsed, our_domains)

    if complaint is None and bounce is None:
        complaint = detect_complaint(parsed)
    if complaint is not None:
        result.kind = "complaint"
        result.evidence += complaint.evidence
        result.feedback_type = complaint.feedback_type
        result.complained_recipient = complaint.complained_recipient
        result.original_message_id = complaint.original_message_id
        return result

    bounce = bounce or detect_bounce(parsed)
    if bounce is not None:
        result.kind = "bounce"
        verdict = bounce.verdict
        result.evidence += [*bounce.evidence, f"{verdict.bounce_type}: {verdict.reason}"]
        result.bounce_type = bounce.verdict.bounce_type
        result.bounce_reason = bounce.verdict.bounce_reason
        result.status_code = bounce.verdict.status_code
        result.about_our_message = bounce.verdict.about_our_message
        result.diagnostic = bounce.diagnostic or None
        result.bounced_recipients = bounce.recipients
        result.original_message_id = bounce.original_message_id
        return result

    if _calendar_reply(result, parsed):
        return result

    reply_text = strip_quoted(parsed.body_text)
    result.reply_text = reply_text
    result.language = guess_language(f"{parsed.subject}\n{reply_text}")
    opt_out = automated_opt_out(parsed, reply_text)
    if opt_out is not None:  # RFC 8058 / List-Unsubscribe mailto: often Auto-Submitted, never an auto-reply
        result.kind = "unsubscribe_request"
        result.sentiment = "negative"
        result.evidence.append(opt_out)
        return result
    auto = detect_auto_reply(parsed, reply_text)
    result.evidence += auto.evidence
    exclude = [parsed.from_address or "", *parsed.to_addresses]

    left = left_company_phrase(reply_text)
    if auto.is_auto and left is None and not auto.is_out_of_office:
        left = left_company_phrase(parsed.body_text)
    if auto.is_auto:
        if left is not None:
            return _left_company(result, left, reply_text, exclude, our_domains)
        if auto.is_out_of_office:
            result.kind = "out_of_office"
            _add_return_date(result, parsed, reply_text or parsed.body_text)
            return result
        result.kind = "auto_reply"
        return result

    unsubscribe = unsubscribe_phrase(reply_text)
    if unsubscribe is not None:
        result.kind = "unsubscribe_request"
        result.sentiment = "negative"
        result.evidence.append(f"unsubscribe phrase in reply: {unsubscribe[:60]!r}")
        return result
    if left is not None:
        return _left_company(result, left, reply_text, exclude, our_domains)
    mood, phrases = sentiment(reply_text)
    result.kind = "reply"
    result.sentiment = mood  # type: ignore[assignment]
    result.evidence.append("no automation signals: written by a person")
    if phrases:
        result.evidence.append(f"sentiment {mood}: " + ", ".join(repr(p) for p in phrases))
    return result


_CALENDAR_TYPES = frozenset({"text/calendar", "application/ics"})


def _calendar_reply(result: Classification, parsed: ParsedMessage) -> bool:
    """Fill ``result`` as a calendar_reply when a part of the message itself (not of a message
    it quotes) is an iTIP REPLY; whether to believe it is for ``sequencer.meetings.rsvp``."""
    for part in _own_parts(parsed.message):
        ctype = part.get_content_type()
        if ctype not in _CALENDAR_TYPES:
            continue
        payload = part.get_payload(decode=True)
        reply = read_reply(payload) if isinstance(payload, bytes) else None
        if reply is None:
            continue
        result.kind = "calendar_reply"
        result.calendar_uid, result.calendar_attendee = reply.uid, reply.attendee
        result.calendar_partstat, result.calendar_sequence = reply.partstat, reply.sequence
        result.evidence.append(f"iTIP REPLY in a {ctype} part: {reply.attendee} {reply.partstat} "
                               f"for UID {reply.uid[:80]!r} (SEQUENCE {reply.sequence})")
        return True
    return False


def _left_company(
    result: Classification,
    phrase: str,
    text: str,
    exclude: list[str],
    our_domains: frozenset[str],
) -> Classification:
    result.kind = "left_company"
    result.evidence.append(f"left-company phrase: {phrase[:60]!r}")
    result.new_contacts = new_contacts(text, exclude=exclude, our_domains=our_domains)
    return result


def _add_return_date(result: Classification, parsed: ParsedMessage, text: str) -> None:
    domain = (parsed.from_address or "").rpartition("@")[2]
    day_first = prefers_day_first(
        result.language, parsed.headers.get("content-language", ""), domain
    )
    found = find_return_date(f"{parsed.subject}\n{text}", parsed.date_local, day_first=day_first)
    order = "day-first" if day_first else "month-first"
    if found is None:
        result.evidence.append("no return date stated")
        return
    result.return_date = found.date
    result.evidence.append(
        f"return date {found.date.isoformat()} from {found.phrase!r} "
        f"(numeric dates read {order}, language {result.language or 'unknown'})"
    )
