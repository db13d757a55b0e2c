"""What a verified booking-tool delivery does to the meetings: one ``Command`` in, one ``Outcome`` out.

Works in the caller's transaction and never commits; the shell commits and then sends the
invitation the outcome names (``Outcome.invite``), so nothing is announced that was not
stored. Applying the same delivery twice changes nothing the second time (a duplicate):
the booking tool's id is unique per source (``booking.book``), a move to the state the
meeting is already in is not made again, and ``invites.deliver`` sends a METHOD at a
SEQUENCE once. Every accepted delivery is one ``meeting_webhook`` decision (source,
trigger, what it did), so a delivery that changed nothing is still on record, never
dropped silently.

Trust: the command comes from a delivery whose signature was checked
(``sequencer.meetings.webhooks``), so its booking ids and its trigger are the tool's. Who
booked is still whoever filled the tool's public form: with ``webhook_unknown_attendee =
"park"`` a booking for an address we do not know is stored marked for a person's review
(``Meeting.review``, as ``booking.book`` parks; the raw delivery is kept in the decision),
listed by ``sequencer webhooks parked``, kept with ``sequencer meetings review ID`` or
refused with ``sequencer meetings cancel ID``. The meeting is on the AE's calendar in the
booking tool either way, so its invitation goes out as for any booking.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, select

from sequencer.core import decisions
from sequencer.core.config import Settings
from sequencer.core.models import Decision, Meeting, Prospect
from sequencer.meetings import booking
from sequencer.meetings.booking import BookingIn, MeetingError
from sequencer.meetings.webhooks import (
    BOOK,
    CALCOM,
    CANCEL,
    HELD,
    IGNORE,
    NO_SHOW,
    NO_SHOW_REMOVED,
    RESCHEDULE,
    RESCHEDULE_PENDING,
    Command,
    WebhookError,
)
from sequencer.rules.book import RuleBook
from sequencer.sequences import schedule

DECISION = "meeting_webhook"
UNKNOWN_ATTENDEE = ("create", "park")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# booking's limits on free text: a tool's text longer than these is cut, not refused.
_CUT = {"title": 200, "location": 2000, "name": 200, "reason": 500}


@dataclass
class Outcome:
    result: str  # booked | parked | rescheduled | canceled | held | no_show | no_show_cleared | duplicate
    #              | pending | unmatched | unchanged | ignored
    command: Command
    meeting: Meeting | None = None
    invite: str | None = None  # REQUEST | CANCEL: what the shell sends once this is committed
    note: str = ""

    def answer(self) -> dict[str, Any]:
        """The JSON the booking tool (and whoever reads its delivery log) gets back."""
        found: dict[str, Any] = {"result": self.result, "source": self.command.source,
                                 "trigger": self.command.trigger}
        if self.note:
            found["note"] = self.note
        if self.meeting is not None:
            found.update(meeting_id=self.meeting.id, uid=self.meeting.uid, state=self.meeting.state,
                         ical_sequence=self.meeting.ical_sequence)
            if self.meeting.review:
                found["review"] = self.meeting.review
        return found


def apply(session: Session, now: datetime, settings: Settings, rules: RuleBook, command: Command,
          raw: bytes = b"") -> Outcome:
    """Carry out ``command`` (does not commit). ``WebhookError`` 4xx for a refused move, nothing written."""
    _one_at_a_time(session, command)
    try:
        outcome = _carry_out(session, now, settings, rules, command)
    except MeetingError as exc:
        raise _refusal(command, exc) from None
    _log(session, now, outcome, raw)
    return outcome


def _one_at_a_time(session: Session, command: Command) -> None:
    """Hold, until this transaction ends, the right to handle deliveries of this booking.

    A tool that retries while the first delivery is still being handled sends the same
    booking twice at once; handled one after the other, the second finds what the first did
    and is a duplicate (no second meeting, move or invitation). PostgreSQL: an advisory
    lock on the booking's id. SQLite: the database's one write lock, taken now by a write
    that changes nothing, so the second waits (busy timeout) instead of reading before the
    first commits.
    """
    if not command.external_id:
        return
    if session.get_bind().dialect.name == "postgresql":
        digest = hashlib.sha256(f"meeting-webhook:{command.source}:{command.external_id}".encode()).digest()
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                        {"key": int.from_bytes(digest[:8], "big", signed=True)})
    else:
        session.execute(text("UPDATE meeting SET id = id WHERE 1 = 0"))


def _carry_out(session: Session, now: datetime, settings: Settings, rules: RuleBook, command: Command) -> Outcome:
    via, by = command.source, f"{command.source} {command.trigger}"
    if command.action == IGNORE:
        return Outcome("ignored", command, note=command.reason)
    if command.action in (BOOK, RESCHEDULE):
        return _booking(session, now, settings, rules, command)
    meeting = booking.find_by_external(session, command.source, command.external_id)
    if meeting is None:
        return Outcome("unmatched", command, note=f"no meeting is booked as {command.source} {command.external_id}; "
                                                  "nothing to change")
    if command.action == RESCHEDULE_PENDING:
        if meeting.external_id == command.next_external_id:
            return Outcome("duplicate", command, meeting, note="already moved to the new booking")
        return Outcome("pending", command, meeting, note=f"rescheduled in {command.source}: the new booking "
                                                         f"{command.next_external_id} will move it")
    if command.action == CANCEL:
        if meeting.state == "canceled":
            return Outcome("duplicate", command, meeting)
        booking.cancel(session, now, meeting, _cut(command.reason, "reason"), via=via)
        return Outcome("canceled", command, meeting, invite="CANCEL")
    if command.action == HELD:
        if meeting.state == "held":
            return Outcome("duplicate", command, meeting)
        if meeting.state in ("no_show", "canceled"):
            # Cal.com schedules MEETING_ENDED when the booking is made and sends it whatever happened.
            return Outcome("unchanged", command, meeting, note=f"the meeting was recorded as {meeting.state}; "
                                                               "its end time passing does not make it held")
        booking.mark_held(session, now, meeting, by=by, via=via)
        return Outcome("held", command, meeting)
    if command.action == NO_SHOW:
        if meeting.state == "no_show":
            return Outcome("duplicate", command, meeting)
        fault = command.fault or _fault(session, meeting, command.absent)
        if not fault:
            return Outcome("unchanged", command, meeting, note=f"only guests were marked absent "
                                                               f"({', '.join(command.absent)}); the meeting stands")
        booking.mark_no_show(session, now, meeting, fault, command.reason, by=by, via=via, rules=rules)
        return Outcome("no_show", command, meeting)
    if command.action == NO_SHOW_REMOVED:
        if meeting.state != "no_show":
            return Outcome("duplicate", command, meeting, note=f"the meeting is {meeting.state}, not a no-show")
        booking.clear_no_show(session, now, meeting, by=by, via=via)
        return Outcome("no_show_cleared", command, meeting)
    raise AssertionError(f"unhandled webhook action {command.action!r}")


def _booking(session: Session, now: datetime, settings: Settings, rules: RuleBook, command: Command) -> Outcome:
    already = booking.find_by_external(session, command.source, command.external_id)
    if already is not None:
        return Outcome("duplicate", command, already)
    if command.action == RESCHEDULE:
        meeting = booking.find_by_external(session, command.source, command.previous_external_id)
        if meeting is not None:
            booking.reschedule(session, now, meeting, command.start, command.duration_minutes,
                               new_external_id=command.external_id, via=command.source)
            return Outcome("rescheduled", command, meeting, invite="REQUEST")
        # A reschedule of a booking made before the webhook was set up: book it as new.
    mode = settings.webhook_unknown_attendee
    if mode not in UNKNOWN_ATTENDEE:
        raise WebhookError(503, f"webhook_unknown_attendee must be one of {', '.join(UNKNOWN_ATTENDEE)}, "
                                f"not {mode!r}")
    assert command.ae is not None and command.prospect is not None and command.start is not None
    guests = [{"email": guest.email, "name": _cut(guest.name, "name"), "role": guest.role}
              for guest in command.guests if guest.email not in (command.ae.email, command.prospect.email)]
    meeting = booking.book(session, now, dataclasses.replace(settings, meeting_unknown_prospect=mode), rules,
                           BookingIn(prospect_email=command.prospect.email, ae=command.ae.email, start=command.start,
                                     duration_minutes=command.duration_minutes or 0,
                                     title=_cut(command.title, "title"), location=_cut(command.location, "location"),
                                     source=command.source, external_id=command.external_id,
                                     prospect_name=_cut(command.prospect.name, "name"), extra_attendees=guests))
    _set_timezone(session, meeting, command.prospect.timezone)
    if meeting.review:
        return Outcome("parked", command, meeting, invite="REQUEST",
                       note="waits for a person's review: sequencer webhooks parked, sequencer meetings review")
    return Outcome("booked", command, meeting, invite="REQUEST")


def _fault(session: Session, meeting: Meeting, absent: tuple[str, ...]) -> str:
    """Whose no-show it is, from the addresses the tool marked absent: the AE's, the prospect's, or none."""
    prospect = session.get(Prospect, meeting.prospect_id)
    if meeting.ae in absent:
        return "ae"
    if prospect is not None and prospect.email in absent:
        return "prospect"
    return ""


def _set_timezone(session: Session, meeting: Meeting, zone: str) -> None:
    """A prospect booked through a tool says where they are (reminders go out in their time)."""
    prospect = session.get(Prospect, meeting.prospect_id)
    if prospect is None or not zone or (prospect.timezone or "UTC") != "UTC":
        return
    try:
        schedule.zone(zone)
    except ValueError:
        return  # a zone we cannot read is no reason to refuse a booking
    prospect.timezone = zone
    session.add(prospect)
    session.flush()


def _refusal(command: Command, exc: MeetingError) -> WebhookError:
    """A move the meetings refused, as a 4xx naming the field of the delivery where we can."""
    field, _, rest = str(exc).partition(": ")
    if field == "state":
        return WebhookError(409, f"{command.source} {command.trigger} {command.external_id}: {rest}")
    path = _PATHS.get(command.source, {}).get(field)
    return WebhookError(422, f"{path} ({field}): {rest}" if path else str(exc))


_PATHS = {
    CALCOM: {"ae": "payload.organizer.email", "prospect_email": "payload.attendees[0].email",
             "start": "payload.startTime", "duration_minutes": "payload.endTime", "title": "payload.title",
             "location": "payload.location", "external_id": "payload.uid", "prospect_name": "payload.attendees[0].name",
             "reason": "payload.cancellationReason"},
    "calendly": {"ae": "payload.scheduled_event.event_memberships[0].user_email",
                 "prospect_email": "payload.email", "start": "payload.scheduled_event.start_time",
                 "duration_minutes": "payload.scheduled_event.end_time", "title": "payload.scheduled_event.name",
                 "location": "payload.scheduled_event.location", "external_id": "payload.uri",
                 "prospect_name": "payload.name", "reason": "payload.cancellation.reason"},
}


def _cut(text: str, kind: str) -> str:
    return _CONTROL.sub(" ", text or "").strip()[: _CUT[kind]]


def _log(session: Session, now: datetime, outcome: Outcome, raw: bytes) -> None:
    command, meeting = outcome.command, outcome.meeting
    detail: dict[str, Any] = {"source": command.source, "trigger": command.trigger, "action": command.action,
                              "result": outcome.result, "external_id": command.external_id,
                              "sent_at": command.sent_at, "meeting_id": meeting.id if meeting else None}
    if outcome.result == "parked" and raw:
        detail["delivery"] = json.loads(raw)  # kept for the review: what the booking form said, as sent
    what = f"{command.source} {command.trigger} {command.external_id}".strip()
    decisions.record(session, now, DECISION, f"{what}: {outcome.result}" + (f" ({outcome.note})" if outcome.note
                                                                             else ""),
                     prospect_id=meeting.prospect_id if meeting else None, **detail)


def parked(session: Session) -> list[tuple[Meeting, dict[str, Any]]]:
    """The meetings booked through a tool that wait for a review, each with the delivery that made it."""
    meetings = session.exec(select(Meeting).where(Meeting.review != "", Meeting.source.in_(("calcom", "calendly")))
                            .order_by(Meeting.id)).all()
    found = []
    for meeting in meetings:
        rows = session.exec(select(Decision).where(Decision.kind == DECISION,
                                                             Decision.prospect_id == meeting.prospect_id)
                            .order_by(Decision.id)).all()
        delivery = next((row.detail for row in rows if row.detail.get("meeting_id") == meeting.id
                         and row.detail.get("result") == "parked"), {})
        found.append((meeting, delivery))
    return found
