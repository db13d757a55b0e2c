"""The meeting lifecycle: book, reschedule, cancel, held, no-show, accept, reject, RSVP.

    scheduled -> rescheduled (any number of times) -> held | no_show | canceled
    held -> accepted | rejected (by the AE, against the qualification file)

Every function takes a session and ``now``, works in the caller's transaction (it never
commits) and returns the meeting. Everything a caller hands in is checked before anything
is changed: bad input or an illegal move (held after canceled, a reschedule into the past,
accept before held) raises ``MeetingError`` whose message starts with the field at fault,
and nothing is written. Each move is recorded in the decision log as ``meeting_<event>``
on the prospect's timeline (``detail.meeting_id``, ``detail.via``: cli, http, task, calcom,
calendly), which is the meeting's append-only history and what ``sequencer explain`` shows.

Trust: the CLI and the HTTP API are used by people with a database or an API key, and a
booking tool's webhook is verified by its signature before it gets here; but what any of
them carries (addresses, times, names) is still input, so it is normalised and bounded
here, whoever sends it. The attendee of a webhook booking is whoever filled the booking
form, which is why an unknown address can be parked for review (``meeting_unknown_prospect``).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, cast
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from sequencer.core import decisions
from sequencer.core.config import ConfigError, Settings
from sequencer.core.models import Account, Enrollment, Meeting, Prospect, SequenceVersion
from sequencer.enrollments import lifecycle
from sequencer.intake.prospects import upsert_prospect
from sequencer.rules.actions import Event, apply
from sequencer.rules.book import RuleBook
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


@dataclass
class BookingIn:
    """What a booking says, from whichever shell made it (CLI, HTTP, a task, a webhook)."""

    prospect_email: str
    ae: str
    start: datetime  # aware; a naive time is refused
    duration_minutes: int
    sdr: str = ""
    title: str = ""
    location: str = ""
    source: str = "cli"
    external_id: str | None = None  # the booking tool's id: a second booking with it returns the first
    prospect_name: str = ""
    extra_attendees: list[dict] = field(default_factory=list)
    enrollment_id: int | None = None  # the enrollment it came from, when the shell knows (a task does)


# --- booking ----------------------------------------------------------------------------


def book(session: Session, now: datetime, settings: Settings, rules: RuleBook, booking: BookingIn) -> Meeting:
    """Store a new meeting and stop the prospect's active sequences (the ``meeting_booked`` rule).

    Idempotent on (source, external_id): the same booking delivered twice returns the
    meeting the first one made, unchanged. A prospect we do not know is created, and with
    ``meeting_unknown_prospect = "park"`` the meeting is also marked for a person's review.
    """
    source = _one_of(booking.source, SOURCES, "source")
    external_id = _external_id(booking.external_id)
    if external_id is not None:
        existing = find_by_external(session, source, external_id)
        if existing is not None:
            return existing
    start = _aware(booking.start, "start")
    if start <= now:
        raise MeetingError(f"start: {_when(start)} is not in the future (now is {_when(now)})")
    duration = _duration(booking.duration_minutes, "duration_minutes")
    email = _address(booking.prospect_email, "prospect_email")
    ae = _ae(settings, booking.ae)
    sdr = _address(booking.sdr, "sdr") if (booking.sdr or "").strip() else ""
    title = _text(booking.title, "title")
    location = _text(booking.location, "location")
    prospect_name = _text(booking.prospect_name, "prospect_name")
    extra = [_attendee(item, f"extra_attendees[{index}]") for index, item in enumerate(booking.extra_attendees or [])]
    if settings.meeting_unknown_prospect not in UNKNOWN_PROSPECT:
        raise ConfigError(f"meeting_unknown_prospect must be one of {', '.join(UNKNOWN_PROSPECT)}, "
                          f"not {settings.meeting_unknown_prospect!r}")
    prospect = session.exec(select(Prospect).where(Prospect.email == email)).first()
    enrollment = _enrollment_of(session, prospect, booking.enrollment_id)
    # Everything is checked: from here on only writes.
    review = ""
    if prospect is None and settings.meeting_unknown_prospect == "park":
        review = f"booked for {email}, who was not a prospect: check who they are before the meeting"
    try:
        # One savepoint for the new prospect and the meeting: the same booking delivered twice
        # at once makes both, and the delivery that comes second finds the first one's.
        with session.begin_nested():
            if prospect is None:
                prospect = _new_prospect(session, now, email, prospect_name, sdr)
            sdr = sdr or prospect.owner or _sequence_owner(session, enrollment)
            meeting = Meeting(
                uid=f"{uuid.uuid4().hex}@sequencer", prospect_id=prospect.id,
                enrollment_id=enrollment.id if enrollment else None, sdr=sdr, ae=ae,
                title=title or _default_title(session, prospect), location=location, start_at=start,
                duration_minutes=duration, state="scheduled", ical_sequence=0, source=source,
                external_id=external_id, previous_external_ids=[],
                attendees=_attendees(prospect, prospect_name, ae, sdr, source, extra),
                review=review, start_set_at=now, created_at=now, updated_at=now,
            )
            session.add(meeting)
            session.flush()
    except IntegrityError:
        existing = find_by_external(session, source, external_id) if external_id is not None else None
        if existing is None:
            raise
        return existing
    _record(session, now, meeting, "booked", f"meeting #{meeting.id} booked for {_when(start)} with {ae} "
            f"({duration} min, by {sdr or 'unknown SDR'}, via {source})", source,
            start=start.isoformat(), ae=ae, sdr=sdr, external_id=external_id)
    if review:
        _record(session, now, meeting, "parked", f"meeting #{meeting.id}: {review}", source)
    active = session.exec(select(Enrollment).where(Enrollment.prospect_id == prospect.id,
                                                   Enrollment.state.in_(lifecycle.ACTIVE_STATES))
                          .order_by(Enrollment.id)).all()
    for running in active:
        apply(session, now, rules, Event(name="meeting_booked", summary=f"meeting #{meeting.id} booked via {source}",
                                         address=prospect.email, enrollment=running,
                                         detail={"meeting_id": meeting.id}))
    return meeting


def find_by_external(session: Session, source: str, external_id: str) -> Meeting | None:
    """The meeting a booking tool knows as ``external_id``, now or before a reschedule."""
    found = session.exec(select(Meeting).where(Meeting.source == source, Meeting.external_id == external_id)).first()
    if found is not None:
        return found
    # previous_external_ids is a JSON list: a text match finds the candidates, Python checks them.
    quoted = json.dumps(external_id)
    candidates = session.exec(select(Meeting).where(
        Meeting.source == source, cast(Meeting.previous_external_ids, String).contains(quoted, autoescape=True)))
    return next((meeting for meeting in candidates if external_id in (meeting.previous_external_ids or [])), None)


# --- moves ------------------------------------------------------------------------------


def reschedule(session: Session, now: datetime, meeting: Meeting, start: datetime,
               duration_minutes: int | None = None, new_external_id: str | None = None, *,
               via: str = "") -> Meeting:
    """Move a meeting that has not happened to a new time in the future (SEQUENCE + 1)."""
    _lock(session, meeting)
    _must_be_open(meeting, "rescheduled")
    start = _aware(start, "start")
    if start <= now:
        raise MeetingError(f"start: {_when(start)} is not in the future (now is {_when(now)}); "
                           "a meeting cannot be moved into the past")
    duration = meeting.duration_minutes if duration_minutes is None else _duration(duration_minutes,
                                                                                   "duration_minutes")
    new_id = _external_id(new_external_id)
    if new_id is not None and new_id != meeting.external_id:
        other = find_by_external(session, meeting.source, new_id)
        if other is not None and other.id != meeting.id:
            raise MeetingError(f"external_id: {new_id!r} already belongs to meeting #{other.id}")
    if start == meeting.start_at and duration == meeting.duration_minutes and new_id in (None, meeting.external_id):
        raise MeetingError(f"start: meeting #{meeting.id} is already at {_when(start)} for {duration} min")
    before = meeting.start_at
    meeting.state = "rescheduled"
    meeting.start_at, meeting.start_set_at, meeting.duration_minutes = start, now, duration
    meeting.ical_sequence += 1
    if new_id is not None and new_id != meeting.external_id:
        if meeting.external_id:
            meeting.previous_external_ids = [*(meeting.previous_external_ids or []), meeting.external_id]
        meeting.external_id = new_id
    # A new time is a new question to every attendee (RFC 5546 3.2.2: a change of time resets PARTSTAT).
    meeting.attendees = [{**person, "partstat": _first_partstat(person["role"], meeting.source)}
                         for person in meeting.attendees]
    _save(session, now, meeting)
    _record(session, now, meeting, "rescheduled", f"meeting #{meeting.id} moved from {_when(before)} to "
            f"{_when(start)} ({duration} min)", via, start=start.isoformat(), previous_start=_iso(before),
            ical_sequence=meeting.ical_sequence)
    return meeting


def cancel(session: Session, now: datetime, meeting: Meeting, reason: str = "", *, via: str = "") -> Meeting:
    """Cancel a meeting that has not started (SEQUENCE + 1); one that has is held or a no-show."""
    _lock(session, meeting)
    _must_be_open(meeting, "canceled")
    reason = _text(reason, "reason")
    if meeting.start_at <= now:
        raise MeetingError(f"state: meeting #{meeting.id} started at {_when(meeting.start_at)}; record it as held "
                           "or as a no-show instead of canceling it")
    meeting.state, meeting.cancel_reason = "canceled", reason
    meeting.ical_sequence += 1
    _save(session, now, meeting)
    _record(session, now, meeting, "canceled", f"meeting #{meeting.id} canceled" + (f": {reason}" if reason else ""),
            via, ical_sequence=meeting.ical_sequence)
    return meeting


def mark_held(session: Session, now: datetime, meeting: Meeting, held_minutes: int | None = None, by: str = "", *,
              via: str = "") -> Meeting:
    """Record that the meeting took place; the AE's acceptance window opens now."""
    _lock(session, meeting)
    _must_be_open(meeting, "held")
    _must_have_started(meeting, now, "held")
    minutes = meeting.duration_minutes if held_minutes is None else _whole(held_minutes, "held_minutes", 1, MAX_HELD)
    by = _text(by, "by")
    meeting.state, meeting.held_minutes, meeting.held_at, meeting.recorded_by = "held", minutes, now, by
    meeting.acceptance = "pending"
    _save(session, now, meeting)
    _record(session, now, meeting, "held", f"meeting #{meeting.id} held ({minutes} min), recorded by "
            f"{by or 'unknown'}", via, held_minutes=minutes, by=by)
    return meeting


def mark_no_show(session: Session, now: datetime, meeting: Meeting, fault: str, reason: str, by: str = "", *,
                 via: str = "", rules: RuleBook | None = None) -> Meeting:
    """Record that the meeting did not happen, whose fault it was and why (a reason code).

    With ``rules``, the no-show is an event for the managers' stop rules
    (``meeting_no_show.<fault>``; built in: ignore), which can enroll the prospect into a
    re-engagement sequence. Shells pass the rules in force (``rules.actions.rulebook``).
    """
    _lock(session, meeting)
    _must_be_open(meeting, "recorded as a no-show")
    _must_have_started(meeting, now, "recorded as a no-show")
    fault = _one_of(fault, FAULTS, "fault")
    code = (reason or "").strip()
    if not _CODE.fullmatch(code):
        raise MeetingError(f"reason: a no-show needs a reason code (lowercase letters, digits, _ or -, such as "
                           f"no_answer or forgot), not {reason!r}")
    by = _text(by, "by")
    meeting.state, meeting.no_show_fault, meeting.no_show_reason, meeting.recorded_by = "no_show", fault, code, by
    _save(session, now, meeting)
    _record(session, now, meeting, "no_show", f"meeting #{meeting.id} was a no-show: {fault}'s fault ({code}), "
            f"recorded by {by or 'unknown'}", via, fault=fault, reason_code=code, by=by)
    if rules is not None:
        prospect = session.get(Prospect, meeting.prospect_id)
        enrollment = session.get(Enrollment, meeting.enrollment_id) if meeting.enrollment_id else None
        apply(session, now, rules, Event(
            name=f"meeting_no_show.{fault}", summary=f"meeting #{meeting.id} no-show ({fault}: {code})",
            address=prospect.email, enrollment=enrollment, new_contacts=[prospect.email],
            detail={"meeting_id": meeting.id}))
    return meeting


def clear_no_show(session: Session, now: datetime, meeting: Meeting, by: str = "", *, via: str = "") -> Meeting:
    """Undo a no-show recorded by mistake (Calendly's ``invitee_no_show.deleted``): back to its open state."""
    _lock(session, meeting)
    if meeting.state != "no_show":
        raise MeetingError(f"state: meeting #{meeting.id} is {meeting.state}, not a no-show")
    by = _text(by, "by")
    meeting.state = "rescheduled" if meeting.ical_sequence else "scheduled"
    meeting.no_show_fault = meeting.no_show_reason = ""
    meeting.recorded_by = by
    _save(session, now, meeting)
    _record(session, now, meeting, "no_show_cleared", f"meeting #{meeting.id}: no-show withdrawn by "
            f"{by or 'unknown'}", via, by=by)
    return meeting


def accept(session: Session, now: datetime, meeting: Meeting, by: str = "", *, via: str = "") -> Meeting:
    """The AE accepts a held meeting into pipeline (it met the qualification file)."""
    _lock(session, meeting)
    _must_be_decidable(meeting, "accepted")
    by = _text(by, "by") or meeting.ae
    meeting.acceptance, meeting.decided_at, meeting.decided_by = "accepted", now, by
    _save(session, now, meeting)
    _record(session, now, meeting, "accepted", f"meeting #{meeting.id} accepted by {by}", via, by=by)
    return meeting


def reject(session: Session, now: datetime, meeting: Meeting, reason: str, note: str = "", by: str = "", *,
           via: str = "") -> Meeting:
    """The AE rejects a held meeting, with a reason from the fixed taxonomy (``other`` needs a note)."""
    _lock(session, meeting)
    _must_be_decidable(meeting, "rejected")
    reason = _one_of(reason, tuple(REJECTION_REASONS), "reason")
    note = _text(note, "note")
    if reason == "other" and not note:
        raise MeetingError("note: a rejection for reason 'other' needs a note saying why")
    by = _text(by, "by") or meeting.ae
    meeting.acceptance, meeting.rejection_reason, meeting.rejection_note = "rejected", reason, note
    meeting.decided_at, meeting.decided_by = now, by
    _save(session, now, meeting)
    _record(session, now, meeting, "rejected", f"meeting #{meeting.id} rejected by {by}: "
            f"{REJECTION_REASONS[reason]}" + (f" ({note})" if note else ""), via, by=by, reason_code=reason)
    return meeting


def set_partstat(session: Session, now: datetime, meeting: Meeting, attendee_email: str, partstat: str, *,
                 via: str = "") -> Meeting:
    """An attendee's answer to the invite (an RSVP reply): ACCEPTED, DECLINED, TENTATIVE or NEEDS-ACTION."""
    _lock(session, meeting)
    email = _address(attendee_email, "attendee_email")
    status = _one_of((partstat or "").strip().upper(), PARTSTATS, "partstat")
    if not any(person["email"] == email for person in meeting.attendees):
        raise MeetingError(f"attendee_email: {email} is not an attendee of meeting #{meeting.id}")
    meeting.attendees = [{**person, "partstat": status} if person["email"] == email else person
                         for person in meeting.attendees]
    _save(session, now, meeting)
    _record(session, now, meeting, "partstat", f"meeting #{meeting.id}: {email} answered {status}", via,
            attendee=email, partstat=status)
    return meeting


def clear_review(session: Session, now: datetime, meeting: Meeting, by: str = "", *, via: str = "") -> Meeting:
    """A person looked at a parked meeting's unknown attendee and kept it."""
    _lock(session, meeting)
    if not meeting.review:
        raise MeetingError(f"review: meeting #{meeting.id} is not waiting for a review")
    by = _text(by, "by")
    meeting.review = ""
    _save(session, now, meeting)
    _record(session, now, meeting, "reviewed", f"meeting #{meeting.id} reviewed by {by or 'unknown'}", via, by=by)
    return meeting


def as_dict(meeting: Meeting, prospect_email: str = "") -> dict[str, Any]:
    """The meeting as JSON-ready values (times as ISO 8601 UTC), for ``--json`` and the HTTP API."""
    values = meeting.model_dump()
    for name, value in values.items():
        if isinstance(value, datetime):
            values[name] = value.isoformat()
    if prospect_email:
        values["prospect_email"] = prospect_email
    return values


def get(session: Session, meeting_id: int) -> Meeting:
    meeting = session.get(Meeting, meeting_id)
    if meeting is None:
        raise MeetingError(f"id: no meeting #{meeting_id}")
    return meeting


# --- checks -----------------------------------------------------------------------------


def _lock(session: Session, meeting: Meeting) -> None:
    """Read the meeting again, locked until the transaction ends (PostgreSQL: FOR UPDATE), so
    two moves made at once (a webhook and a person) are judged one after the other. SQLite
    takes one writer at a time and refuses a write based on a stale read."""
    if meeting.id is None:
        raise MeetingError("id: the meeting is not stored")
    session.refresh(meeting, with_for_update=True)


def _must_be_open(meeting: Meeting, move: str) -> None:
    if meeting.state not in OPEN_STATES:
        raise MeetingError(f"state: meeting #{meeting.id} is already {meeting.state} and cannot be {move} "
                           f"(only a scheduled or rescheduled meeting can)")


def _must_have_started(meeting: Meeting, now: datetime, move: str) -> None:
    if meeting.start_at > now:
        raise MeetingError(f"state: meeting #{meeting.id} starts at {_when(meeting.start_at)}; it cannot be "
                           f"{move} before it starts")


def _must_be_decidable(meeting: Meeting, move: str) -> None:
    if meeting.state != "held":
        raise MeetingError(f"state: meeting #{meeting.id} is {meeting.state}; only a held meeting can be {move} "
                           "(record it as held first)")
    if meeting.acceptance != "pending":
        raise MeetingError(f"acceptance: meeting #{meeting.id} was already {meeting.acceptance} by "
                           f"{meeting.decided_by or 'someone'} on {_when(meeting.decided_at)}")


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


# --- writes -----------------------------------------------------------------------------


def _save(session: Session, now: datetime, meeting: Meeting) -> None:
    meeting.updated_at = now
    session.add(meeting)
    session.flush()


def _record(session: Session, now: datetime, meeting: Meeting, event: str, reason: str, via: str,
            **detail: Any) -> None:
    decisions.record(session, now, f"meeting_{event}", reason, prospect_id=meeting.prospect_id,
                     meeting_id=meeting.id, via=via or "unspecified", **detail)


def _enrollment_of(session: Session, prospect: Prospect | None, enrollment_id: int | None) -> Enrollment | None:
    """The enrollment a meeting is credited to: the one named, else the prospect's running one, else its latest."""
    if enrollment_id is not None:
        enrollment = session.get(Enrollment, enrollment_id)
        if enrollment is None or prospect is None or enrollment.prospect_id != prospect.id:
            raise MeetingError(f"enrollment_id: enrollment #{enrollment_id} is not one of this prospect's")
        return enrollment
    if prospect is None:
        return None
    rows = session.exec(select(Enrollment).where(Enrollment.prospect_id == prospect.id)
                        .order_by(Enrollment.enrolled_at.desc(), Enrollment.id.desc())).all()
    return next((e for e in rows if e.state in lifecycle.ACTIVE_STATES), rows[0] if rows else None)


def _new_prospect(session: Session, now: datetime, email: str, name: str, sdr: str) -> Prospect:
    first, _, last = name.partition(" ")
    try:
        return upsert_prospect(session, now, email, {"first_name": first, "last_name": last, "owner": sdr,
                                                     "created_by": "meeting booking"})
    except ValueError as exc:
        raise MeetingError(f"prospect_email: {exc}") from None


def _sequence_owner(session: Session, enrollment: Enrollment | None) -> str:
    if enrollment is None:
        return ""
    version = session.get(SequenceVersion, enrollment.sequence_version_id)
    return (version.definition or {}).get("owner", "") if version else ""


def _default_title(session: Session, prospect: Prospect) -> str:
    name = " ".join(part for part in (prospect.first_name, prospect.last_name) if part) or prospect.email
    account = session.get(Account, prospect.account_id) if prospect.account_id else None
    return f"Meeting: {name}" + (f" ({account.name})" if account and account.name else "")


def _first_partstat(role: str, source: str) -> str:
    """An attendee's answer before they gave one: the prospect who booked through a tool has
    accepted (they picked the time), and the SDR who booked it has too."""
    if role == "sdr" or (role == "prospect" and source in BOOKING_TOOLS):
        return "ACCEPTED"
    return "NEEDS-ACTION"


def _attendees(prospect: Prospect, name: str, ae: str, sdr: str, source: str, extra: list[dict]) -> list[dict]:
    prospect_name = name or " ".join(p for p in (prospect.first_name, prospect.last_name) if p)
    people = [{"email": ae, "name": "", "role": "ae", "partstat": _first_partstat("ae", source)},
              {"email": prospect.email, "name": prospect_name, "role": "prospect",
               "partstat": _first_partstat("prospect", source)}]
    if sdr and sdr not in (ae, prospect.email):
        people.append({"email": sdr, "name": "", "role": "sdr", "partstat": _first_partstat("sdr", source)})
    seen = {person["email"] for person in people}
    for person in extra:
        if person["email"] not in seen:
            people.append(person)
            seen.add(person["email"])
    return people

