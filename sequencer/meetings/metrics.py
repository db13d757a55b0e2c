"""The meeting numbers a program is judged on, one function each, for the reports to display.

Every function takes ``by``: None (one group, ``"all"``), ``"sdr"``, ``"ae"``, ``"sequence"``
(the enrollment the meeting is credited to), ``"signal_type"`` (the signal that enrolled
the prospect) or ``"week"`` (the ISO week of the meeting's time, ``2026-W49``); and
optionally ``since`` / ``until`` on the meeting's time. Meetings with nothing to group by
fall in ``"(none)"``. The definitions (after the buyer-side glossaries in the project's seeds):

- show rate: held / meetings whose time has passed (scheduled, rescheduled, held or a
  no-show; a canceled meeting was taken off the calendar and is in neither). A no-show
  that was the AE's fault is left out of both: the prospect came, so it says nothing about
  the booking, and it is never charged to the SDR, in this or any other number here.
- no-shows by fault: prospect, ae, sdr, unknown (grouped by SDR, the AE's are left out).
- qualified-held: held, for at least the qualification file's ``minimum_minutes``, and
  accepted by the AE: the meeting that counts.
- acceptance rate: accepted within the acceptance window / held.
- rejections by reason: the fixed taxonomy.
- overdue acceptances: held, undecided, window closed.
- time from first touch to meeting: from the first email or task of the enrollment the
  meeting is credited to (else the prospect's first) to the booking, in hours.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, func, select

from sequencer.core.clock import as_utc
from sequencer.core.models import Enrollment, Meeting, Signal, Touch
from sequencer.meetings.checks import FAULTS, REJECTION_REASONS

GROUPS = ("sdr", "ae", "sequence", "signal_type", "week")
NONE = "(none)"


@dataclass(frozen=True)
class Rate:
    numerator: int
    denominator: int

    @property
    def value(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None


@dataclass(frozen=True)
class Durations:
    count: int
    median_hours: float | None
    mean_hours: float | None


@dataclass(frozen=True)
class _Row:
    meeting: Meeting
    sequence: str
    signal_type: str


def show_rate(session: Session, now: datetime, by: str | None = None, since: datetime | None = None,
              until: datetime | None = None) -> dict[str, Rate]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in _rows(session, by, since, until):
        m = row.meeting
        if m.start_at > now or m.state == "canceled" or (m.state == "no_show" and m.no_show_fault == "ae"):
            continue
        tally = counts[_key(row, by)]
        tally[1] += 1
        tally[0] += m.state == "held"
    return {key: Rate(held, passed) for key, (held, passed) in sorted(counts.items())}


def by_state(session: Session, by: str | None = None, since: datetime | None = None,
             until: datetime | None = None) -> dict[str, dict[str, int]]:
    """Meetings per state (scheduled, rescheduled, held, no_show, canceled): the funnel's counts."""
    found: dict[str, Counter] = defaultdict(Counter)
    for row in _rows(session, by, since, until):
        found[_key(row, by)][row.meeting.state] += 1
    return {key: dict(sorted(states.items())) for key, states in sorted(found.items())}


def no_shows_by_fault(session: Session, by: str | None = None, since: datetime | None = None,
                      until: datetime | None = None) -> dict[str, dict[str, int]]:
    found: dict[str, Counter] = defaultdict(Counter)
    for row in _rows(session, by, since, until):
        m = row.meeting
        if m.state != "no_show" or (by == "sdr" and m.no_show_fault == "ae"):
            continue
        found[_key(row, by)][m.no_show_fault or "unknown"] += 1
    return {key: {fault: faults[fault] for fault in FAULTS if faults[fault]} for key, faults in sorted(found.items())}


def qualified_held(session: Session, minimum_minutes: int, by: str | None = None, since: datetime | None = None,
                   until: datetime | None = None) -> dict[str, int]:
    """``minimum_minutes``: the qualification file's (``acceptance.load_qualification(settings)``)."""
    found: Counter = Counter()
    for row in _rows(session, by, since, until):
        m = row.meeting
        if m.state == "held" and (m.held_minutes or 0) >= minimum_minutes and m.acceptance == "accepted":
            found[_key(row, by)] += 1
    return dict(sorted(found.items()))


def acceptance_rate(session: Session, window_days: int, by: str | None = None, since: datetime | None = None,
                    until: datetime | None = None) -> dict[str, Rate]:
    """``window_days``: ``settings.meeting_acceptance_days``; an acceptance after it does not count."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in _rows(session, by, since, until):
        m = row.meeting
        if m.state != "held":
            continue
        tally = counts[_key(row, by)]
        tally[1] += 1
        tally[0] += (m.acceptance == "accepted" and m.decided_at is not None and m.held_at is not None
                     and m.decided_at <= m.held_at + timedelta(days=window_days))
    return {key: Rate(accepted, held) for key, (accepted, held) in sorted(counts.items())}


def rejections_by_reason(session: Session, by: str | None = None, since: datetime | None = None,
                         until: datetime | None = None) -> dict[str, dict[str, int]]:
    found: dict[str, Counter] = defaultdict(Counter)
    for row in _rows(session, by, since, until):
        if row.meeting.acceptance == "rejected":
            found[_key(row, by)][row.meeting.rejection_reason] += 1
    return {key: {code: reasons[code] for code in REJECTION_REASONS if reasons[code]}
            for key, reasons in sorted(found.items())}


def overdue_acceptances(session: Session, now: datetime, window_days: int, by: str | None = None,
                        since: datetime | None = None, until: datetime | None = None) -> dict[str, int]:
    found: Counter = Counter()
    for row in _rows(session, by, since, until):
        m = row.meeting
        if m.state == "held" and m.acceptance == "pending" and m.held_at + timedelta(days=window_days) < now:
            found[_key(row, by)] += 1
    return dict(sorted(found.items()))


def time_to_meeting(session: Session, by: str | None = None, since: datetime | None = None,
                    until: datetime | None = None) -> dict[str, Durations]:
    rows = _rows(session, by, since, until)
    by_enrollment = dict(session.exec(select(Touch.enrollment_id, func.min(Touch.sent_at))
                                      .where(Touch.sent_at.is_not(None), Touch.step_index >= 0)
                                      .group_by(Touch.enrollment_id)).all())
    by_prospect = dict(session.exec(select(Touch.prospect_id, func.min(Touch.sent_at))
                                    .where(Touch.sent_at.is_not(None), Touch.step_index >= 0)
                                    .group_by(Touch.prospect_id)).all())
    hours: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        m = row.meeting
        first = by_enrollment.get(m.enrollment_id) if m.enrollment_id else None
        first = _utc(first or by_prospect.get(m.prospect_id))
        if first is None or first > m.created_at:
            continue
        hours[_key(row, by)].append((m.created_at - first).total_seconds() / 3600)
    return {key: Durations(len(values), statistics.median(values), statistics.fmean(values))
            for key, values in sorted(hours.items())}


def _rows(session: Session, by: str | None, since: datetime | None, until: datetime | None) -> list[_Row]:
    if by is not None and by not in GROUPS:
        raise ValueError(f"by: {by!r} is not one of {', '.join(GROUPS)}")
    query = (select(Meeting, Enrollment.sequence_name, Signal.type)
             .join(Enrollment, Enrollment.id == Meeting.enrollment_id, isouter=True)
             .join(Signal, Signal.id == Enrollment.signal_id, isouter=True))
    if since is not None:
        query = query.where(Meeting.start_at >= since)
    if until is not None:
        query = query.where(Meeting.start_at < until)
    return [_Row(meeting, sequence or NONE, signal_type or NONE)
            for meeting, sequence, signal_type in session.exec(query.order_by(Meeting.id))]


def _key(row: _Row, by: str | None) -> str:
    m = row.meeting
    if by is None:
        return "all"
    if by == "week":
        year, week, _ = m.start_at.isocalendar()
        return f"{year}-W{week:02d}"
    return {"sdr": m.sdr or NONE, "ae": m.ae or NONE, "sequence": row.sequence, "signal_type": row.signal_type}[by]


def _utc(moment: datetime | None) -> datetime | None:
    """An aggregate comes back without the column's type (naive on SQLite): read it as the UTC it is."""
    return None if moment is None else as_utc(moment)
