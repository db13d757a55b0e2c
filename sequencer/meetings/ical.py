"""Reading an attendee's RSVP: an iTIP REPLY (RFC 5546 3.2.3) in an iCalendar object.

Pure (no database), so the inbound classifier can use it; writing invitations is ``invites``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import icalendar

from suppression.normalize import normalize_email

PARTSTATS = ("NEEDS-ACTION", "ACCEPTED", "DECLINED", "TENTATIVE")
MAX_REPLY_BYTES = 256 * 1024  # an RSVP is a few hundred bytes; anything far larger is not one


@dataclass(frozen=True)
class CalendarReply:
    """An attendee's answer (iTIP REPLY, RFC 5546 3.2.3), as written by whoever sent it."""

    uid: str
    attendee: str  # the address in the one ATTENDEE line, lower case
    partstat: str  # ACCEPTED | DECLINED | TENTATIVE | NEEDS-ACTION
    sequence: int  # the SEQUENCE of the invitation it answers
    organizer: str = ""


def read_reply(raw: bytes) -> CalendarReply | None:
    """The REPLY in an iCalendar object, or None when it is not one we can read.

    A REPLY carries one VEVENT with the UID, the SEQUENCE it answers, and exactly one
    ATTENDEE: the one answering, with their PARTSTAT (RFC 5546 3.2.3). Anything else
    (another METHOD, several attendees, an unknown PARTSTAT, bytes that do not parse) is None.
    """
    if not raw or len(raw) > MAX_REPLY_BYTES:
        return None
    try:
        cal = icalendar.Calendar.from_ical(raw)
    except Exception:  # the parser raises many kinds on bad input; an unreadable object is simply no reply
        return None
    if not isinstance(cal, icalendar.Calendar) or str(cal.get("METHOD", "")).strip().upper() != "REPLY":
        return None
    events = list(cal.walk("VEVENT"))
    if len(events) != 1:
        return None
    event = events[0]
    attendees = event.get("ATTENDEE")
    attendees = attendees if isinstance(attendees, list) else [attendees] if attendees is not None else []
    uid = str(event.get("UID", "")).strip()
    if len(attendees) != 1 or not uid:
        return None
    attendee = _mailto(attendees[0])
    partstat = str(getattr(attendees[0], "params", {}).get("PARTSTAT", "")).strip().upper()
    if not attendee or partstat not in PARTSTATS:
        return None
    try:
        sequence = int(str(event.get("SEQUENCE", 0)))
    except ValueError:
        return None
    return CalendarReply(uid=uid, attendee=attendee, partstat=partstat, sequence=sequence,
                         organizer=_mailto(event.get("ORGANIZER")) if event.get("ORGANIZER") else "")


def parse_reply(raw: bytes) -> tuple[str, str, str] | None:
    """(uid, attendee_email, partstat) of a METHOD:REPLY object, or None (see ``read_reply``)."""
    reply = read_reply(raw)
    return None if reply is None else (reply.uid, reply.attendee, reply.partstat)


def _mailto(value: Any) -> str:
    text = str(value or "").strip()
    if text.lower().startswith("mailto:"):
        text = text[len("mailto:"):]
    try:
        return normalize_email(text)
    except ValueError:
        return ""
