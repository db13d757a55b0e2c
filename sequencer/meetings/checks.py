"""The meeting's vocabulary (states, sources, roles, the rejection taxonomy) and the checks on its input.

Booking and every later move take addresses, times and text from whoever called them (the
CLI, the HTTP API, a task, a booking tool's webhook), so each value passes one of these
checks before anything is written, and a bad one raises ``MeetingError`` whose message
starts with the field at fault. Kept apart so the booking and the moves share one set of
rules for what a meeting may hold.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sequencer.core.config import Settings
from suppression.normalize import normalize_email

STATES = ("scheduled", "rescheduled", "held", "no_show", "canceled")
OPEN_STATES = ("scheduled", "rescheduled")  # the meeting has not happened yet (or not been recorded)
SOURCES = ("cli", "task", "http", "calcom", "calendly")
BOOKING_TOOLS = ("calcom", "calendly")  # the prospect picked the time themselves
FAULTS = ("prospect", "ae", "sdr", "unknown")
ROLES = ("ae", "prospect", "sdr")
PARTSTATS = ("NEEDS-ACTION", "ACCEPTED", "DECLINED", "TENTATIVE")
# The fixed rejection taxonomy: why an AE would not accept a held meeting into pipeline.
REJECTION_REASONS = {
    "no_budget": "no budget",
    "no_project": "no active project",
    "wrong_title": "wrong title",
    "out_of_icp": "out of the ideal customer profile",
    "competitor_chosen": "a competitor was already chosen",
    "duplicate": "duplicate of a meeting or opportunity already in pipeline",
    "not_decision_maker": "not a decision maker",
    "other": "other (see the note)",
}
UNKNOWN_PROSPECT = ("create", "park")
MIN_DURATION, MAX_DURATION = 5, 8 * 60  # minutes
MAX_HELD = 24 * 60
_CODE = re.compile(r"[a-z][a-z0-9_-]{0,63}")  # a no-show reason code: no_answer, wrong_time, ...
_LIMITS = {"title": 200, "location": 2000, "prospect_name": 200, "reason": 500, "note": 2000, "by": 320,
           "external_id": 255}


class MeetingError(ValueError):
    """A meeting that cannot be booked or moved; the message starts with the field at fault."""


def _aware(value: Any, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise MeetingError(f"{name}: a date and time is required, such as 2026-12-03T15:00:00+01:00")
    if value.tzinfo is None or value.utcoffset() is None:
        raise MeetingError(f"{name}: a time zone is required (for example 2026-12-03T15:00:00+01:00 or ...Z)")
    return value.astimezone(UTC)


def _duration(value: Any, name: str) -> int:
    return _whole(value, name, MIN_DURATION, MAX_DURATION)


def _whole(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MeetingError(f"{name}: a whole number of minutes is required, not {value!r}")
    if not low <= value <= high:
        raise MeetingError(f"{name}: must be between {low} and {high} minutes, not {value}")
    return value


def _address(value: Any, name: str) -> str:
    try:
        return normalize_email(value if isinstance(value, str) else "")
    except ValueError as exc:
        raise MeetingError(f"{name}: {exc}") from None


def _ae(settings: Settings, value: Any) -> str:
    if not (value or "").strip():
        raise MeetingError("ae: the AE's email address is required (or set meeting_default_ae)")
    ae = _address(value, "ae")
    known = {_address(item, "meeting_aes") for item in settings.meeting_aes}
    if known and ae not in known:
        raise MeetingError(f"ae: {ae} is not one of the AEs in meeting_aes ({', '.join(sorted(known))})")
    return ae


def _text(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MeetingError(f"{name}: text is required, not {type(value).__name__}")
    text = value.strip()
    if any(ord(char) < 32 and char not in "\t\n" for char in text) or "\x7f" in text:
        raise MeetingError(f"{name}: control characters are not allowed")
    if len(text) > _LIMITS[name]:
        raise MeetingError(f"{name}: longer than {_LIMITS[name]} characters")
    return text


def _one_of(value: Any, allowed: tuple[str, ...], name: str) -> str:
    if value not in allowed:
        raise MeetingError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _external_id(value: Any) -> str | None:
    if value is None:
        return None
    text = _text(value if isinstance(value, str) else str(value), "external_id")
    return text or None


def _attendee(item: Any, name: str) -> dict:
    if not isinstance(item, dict):
        raise MeetingError(f"{name}: an attendee is a mapping with email, name, role and partstat")
    unknown = set(item) - {"email", "name", "role", "partstat"}
    if unknown:
        raise MeetingError(f"{name}: unknown field {sorted(unknown)[0]!r}")
    role = _one_of(item.get("role", "prospect"), ROLES, f"{name}.role")
    partstat = _one_of(str(item.get("partstat", "NEEDS-ACTION")).upper(), PARTSTATS, f"{name}.partstat")
    return {"email": _address(item.get("email"), f"{name}.email"), "name": _text(item.get("name"), "prospect_name"),
            "role": role, "partstat": partstat}


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat()
