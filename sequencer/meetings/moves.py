"""A booked meeting's moves: reschedule, cancel, held, no-show, accept, reject, RSVP, review.

    scheduled -> rescheduled (any number of times) -> held | no_show | canceled
    held -> accepted | rejected (by the AE, against the qualification file)

Every move locks the meeting, checks everything it is handed and that the move is legal
from the meeting's state (held after canceled, a reschedule into the past, accept before
held raise ``MeetingError``) before it changes anything, works in the caller's transaction
(it never commits) and records itself as ``meeting_<event>`` with ``detail.via``.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from sequencer.core.models import Enrollment, Meeting, Prospect
from sequencer.meetings.checks import (
    _CODE,
    FAULTS,
    MAX_HELD,
    OPEN_STATES,
    PARTSTATS,
    REJECTION_REASONS,
    MeetingError,
    _address,
    _aware,
    _duration,
    _external_id,
    _iso,
    _one_of,
    _text,
    _when,
    _whole,
)
from sequencer.meetings.participants import _first_partstat
from sequencer.meetings.records import _lock, _record, _save, find_by_external
from sequencer.rules.actions import Event, apply
from sequencer.rules.book import RuleBook


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
