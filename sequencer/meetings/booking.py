"""Booking a meeting: one call for every shell (CLI, HTTP, a task, a booking tool's webhook).

``book`` checks everything it is handed before it writes anything, works in the caller's
transaction (it never commits), is idempotent on the booking tool's id and stops the
prospect's active sequences. The moves after it live in ``moves``, the vocabulary and input
checks in ``checks``, who the meeting is for in ``participants``; callers reach them all
through this module, the one they book with.

Trust: the CLI and the HTTP API are used by people with a database or an API key, and a
booking tool's webhook is verified by its signature before it gets here; but what any of
them carries (addresses, times, names) is still input, so it is normalised and bounded
here, whoever sends it. The attendee of a webhook booking is whoever filled the booking
form, which is why an unknown address can be parked for review (``meeting_unknown_prospect``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from sequencer.core.config import ConfigError, Settings
from sequencer.core.models import Enrollment, Meeting, Prospect
from sequencer.enrollments import lifecycle
from sequencer.meetings.checks import (
    SOURCES,
    STATES,
    UNKNOWN_PROSPECT,
    MeetingError,
    _address,
    _ae,
    _attendee,
    _aware,
    _duration,
    _external_id,
    _one_of,
    _text,
    _when,
)
from sequencer.meetings.moves import (
    accept,
    cancel,
    clear_no_show,
    clear_review,
    mark_held,
    mark_no_show,
    reject,
    reschedule,
    set_partstat,
)
from sequencer.meetings.participants import _attendees, _default_title, _enrollment_of, _new_prospect, _sequence_owner
from sequencer.meetings.records import _record, as_dict, find_by_external, get
from sequencer.rules.actions import Event, apply
from sequencer.rules.book import RuleBook

# What callers use as ``booking.<name>``: the moves, the lookups and the states live next door.
__all__ = [
    "STATES", "BookingIn", "MeetingError", "accept", "as_dict", "book", "cancel", "clear_no_show", "clear_review",
    "find_by_external", "get", "mark_held", "mark_no_show", "reject", "reschedule", "set_partstat",
]


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
