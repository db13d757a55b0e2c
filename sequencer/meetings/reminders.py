"""Reminders to the prospect before a meeting (``meeting_reminders_hours``, by default 24 h and 1 h).

The cheapest lever on show rate. A reminder goes from the SDR's mailbox through the guards
that protect the prospect and our sending reputation: the suppression list, a paused
mailbox, an unhealthy sending domain and the mailbox's, domain's and recipient's caps. The
sending window is not applied: the prospect asked for this meeting, and a reminder an hour
before it is useless the next morning. The time in it is written in the prospect's zone.

Each reminder is sent at most once: its ``MeetingNotice`` row (unique key: meeting, start
time, hours) is committed before the email goes, so two workers cannot both send it, and a
reschedule gives new keys. A reminder whose moment had already passed when the meeting was
booked (the 24-hour one for a meeting tomorrow morning, booked tonight) is not sent; when
several are due at once (the loop was down), only the latest is.

``run_due`` is the periodic step the embedded loop and Celery beat call: reminders, then
the acceptance loop's overdue chases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from channels.email import DeliveryUnknown
from channels.message import OutgoingEmail, new_message_id
from sequencer.core import decisions
from sequencer.core.config import ConfigError, Settings
from sequencer.core.models import Enrollment, Mailbox, Meeting, MeetingNotice, Prospect
from sequencer.meetings import acceptance
from sequencer.meetings.checks import OPEN_STATES
from sequencer.sending import caps
from sequencer.sequences.schedule import zone
from suppression.normalize import domain_of
from suppression.store import find_suppression
from suppression.tokens import unsubscribe_headers


@dataclass(frozen=True)
class DueReminder:
    meeting: Meeting
    hours: float
    key: str


def reminder_key(meeting: Meeting, hours: float) -> str:
    return f"reminder:{meeting.id}:{meeting.start_at.isoformat()}:{hours:g}h"


def reminder_hours(settings: Settings) -> list[float]:
    """``meeting_reminders_hours`` checked: positive numbers of hours before the start, smallest first."""
    values = settings.meeting_reminders_hours
    if not isinstance(values, list) or any(isinstance(h, bool) or not isinstance(h, int | float) or not 0 < h <= 24 * 14
                                           for h in values):
        raise ConfigError(f"{settings.source}: meeting_reminders_hours must be a list of hours before the meeting "
                          f"(each more than 0 and at most two weeks), such as [24, 1], not {values!r}")
    return sorted({float(h) for h in values})


def due_reminders(session: Session, now: datetime, settings: Settings) -> list[DueReminder]:
    """The reminders to send now: for each upcoming meeting, the latest one whose moment has come."""
    hours = reminder_hours(settings)
    if not hours:
        return []
    upcoming = session.exec(select(Meeting).where(
        Meeting.state.in_(OPEN_STATES), Meeting.start_at > now, Meeting.start_at <= now + timedelta(hours=hours[-1]),
    ).order_by(Meeting.start_at, Meeting.id)).all()
    due = []
    for meeting in upcoming:
        moments = [h for h in hours if meeting.start_at - timedelta(hours=h) <= now
                   and meeting.start_at - timedelta(hours=h) >= (meeting.start_set_at or meeting.created_at)]
        if moments:
            due.append(DueReminder(meeting, moments[0], reminder_key(meeting, moments[0])))
    if not due:
        return []
    taken = set(session.exec(select(MeetingNotice.key).where(MeetingNotice.key.in_([d.key for d in due]))).all())
    return [item for item in due if item.key not in taken]


def send_reminders(session: Session, now: datetime, settings: Settings, sender: Any,
                   domain_problem: Callable[[Session, datetime, str], str] | None = None) -> list[str]:
    """Send every due reminder through ``sender`` (``send_many``, as the engine's); commits each one."""
    done = []
    for item in due_reminders(session, now, settings):
        line = _send_one(session, now, settings, sender, domain_problem, item)
        if line:
            done.append(line)
    return done


def run_due(session: Session, now: datetime, settings: Settings, sender: Any,
            domain_problem: Callable[[Session, datetime, str], str] | None = None) -> list[str]:
    """The periodic meetings step: due reminders, then overdue acceptances (one task each, once)."""
    return [*send_reminders(session, now, settings, sender, domain_problem),
            *acceptance.chase_overdue(session, now, settings)]


def _send_one(session: Session, now: datetime, settings: Settings, sender: Any,
              domain_problem: Callable[[Session, datetime, str], str] | None, item: DueReminder) -> str:
    meeting = item.meeting
    notice = MeetingNotice(key=item.key, meeting_id=meeting.id, kind="reminder", at=now)
    try:  # the claim: committed before anything is sent, so no other worker sends it too
        session.add(notice)
        session.commit()
    except IntegrityError:
        session.rollback()
        return ""
    prospect = session.get(Prospect, meeting.prospect_id)
    mailbox = _mailbox(session, meeting)
    why, limits = _blocked(session, now, settings, domain_problem, prospect, mailbox)
    if why:
        return _finish(session, now, notice, meeting, "skipped", why, item.hours)
    email = _email(settings, meeting, prospect, mailbox, item.hours, now)
    session.commit()  # the caps counted for this send
    error = sender.send_many([email])[0]
    if error is None:
        return _finish(session, now, notice, meeting, "sent", f"to {prospect.email} from {mailbox.address}",
                       item.hours, message_id=email.message_id, mailbox=mailbox.address)
    if not isinstance(error, DeliveryUnknown) and error.code == 0:
        caps.release(session, [limits])  # no server saw it: it counts for nothing, and may be tried again
        session.delete(notice)
        decisions.record(session, now, "meeting_reminder_failed", f"meeting #{meeting.id}: {item.hours:g} h "
                         f"reminder not sent, tried again at the next tick: {error}", prospect_id=meeting.prospect_id,
                         meeting_id=meeting.id, hours=item.hours)
        session.commit()
        return f"meeting #{meeting.id}: {item.hours:g} h reminder not sent ({error})"
    return _finish(session, now, notice, meeting, "failed", str(error), item.hours, mailbox=mailbox.address)


def _blocked(session: Session, now: datetime, settings: Settings,
             domain_problem: Callable[[Session, datetime, str], str] | None, prospect: Prospect,
             mailbox: Mailbox | None) -> tuple[str, list[caps.Cap]]:
    """Why the reminder may not go ("" when it may), and the caps it was counted against."""
    try:
        entry = find_suppression(session, now, prospect.email, prospect.account_id)
    except ValueError as exc:
        return f"unusable address: {exc}", []
    if entry is not None:
        return f"suppressed: {entry.reason} ({entry.kind} {entry.value})", []
    if mailbox is None:
        return "no sending mailbox configured", []
    session.refresh(mailbox)  # a pause made elsewhere counts
    if mailbox.paused:
        return f"mailbox {mailbox.address} is paused ({mailbox.pause_reason or 'by hand'})", []
    problem = domain_problem(session, now, mailbox.sending_domain) if domain_problem else ""
    if problem:
        return f"mailbox {mailbox.address}: {problem}", []
    limits = caps.caps_for(settings, mailbox, domain_of(prospect.email), now)
    full = caps.reserve(session, limits)
    if full is not None:
        return f"{full.label} reached", []
    return "", limits


def _mailbox(session: Session, meeting: Meeting) -> Mailbox | None:
    """The SDR's mailbox: the thread's, if it is theirs, else one they own, else the thread's, else the first."""
    sdr = (meeting.sdr or "").lower()
    boxes = list(session.exec(select(Mailbox).order_by(Mailbox.id)))
    enrollment = session.get(Enrollment, meeting.enrollment_id) if meeting.enrollment_id else None
    thread = next((box for box in boxes if enrollment and box.id == enrollment.mailbox_id), None)
    own = [box for box in boxes if sdr and sdr in (box.owner.lower(), box.address.lower())]
    if thread is not None and thread in own:
        return thread
    if own:
        return own[0]
    return thread or (boxes[0] if boxes else None)


def _email(settings: Settings, meeting: Meeting, prospect: Prospect, mailbox: Mailbox, hours: float,
           now: datetime) -> OutgoingEmail:
    tz = prospect.timezone or "UTC"
    local = meeting.start_at.astimezone(zone(tz))
    when = f"{local:%A %d %B %Y, %H:%M} {local.tzname()} ({tz})"
    greeting = f"Hi {prospect.first_name}," if prospect.first_name else "Hello,"
    lines = [greeting, "", f"A reminder of our meeting {'in an hour' if hours <= 1 else 'coming up'}:", "",
             f"  {meeting.title}", f"  When: {when}, {meeting.duration_minutes} minutes"]
    if meeting.location:
        lines.append(f"  Where: {meeting.location}")
    lines += ["", "If the time no longer works, reply to this email and we will find another.", "",
              mailbox.display_name or mailbox.address]
    headers = unsubscribe_headers(settings, prospect.email) if settings.secret_key else {}
    return OutgoingEmail(mailbox=mailbox, to=prospect.email, subject=f"Reminder: {meeting.title}, {when}",
                         text="\n".join(lines), message_id=new_message_id(mailbox.sending_domain), headers=headers,
                         date=now)


def _finish(session: Session, now: datetime, notice: MeetingNotice, meeting: Meeting, state: str, why: str,
            hours: float, **detail: Any) -> str:
    notice.state, notice.reason = state, why[:500]
    session.add(notice)
    kind = {"sent": "meeting_reminder", "skipped": "meeting_reminder_skipped"}.get(state, "meeting_reminder_failed")
    verb = {"sent": "sent", "skipped": "not sent"}.get(state, "refused")
    decisions.record(session, now, kind, f"meeting #{meeting.id}: {hours:g} h reminder {verb}: {why}",
                     prospect_id=meeting.prospect_id, meeting_id=meeting.id, hours=hours, key=notice.key, **detail)
    session.commit()
    return f"meeting #{meeting.id}: {hours:g} h reminder {verb} ({why})"

