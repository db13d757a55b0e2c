"""Enrollment state changes: enroll, enter a step, wake, pause, resume, stop, finish.

Every change to an enrollment starts with ``claim``: a compare-and-set on its ``version``
column. Whoever loses the race sees ``False`` and leaves the enrollment alone, which is
what makes a step happen at most once even with several workers ticking.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Update, bindparam, insert, or_, tuple_, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, select

from sequencer.core import decisions
from sequencer.core.models import Enrollment, Prospect, SequenceVersion, Signal
from sequencer.sequences import schedule

ACTIVE_STATES = ("active", "paused")
# How long due enrollments taken by one tick are out of the other ticks' sight (``take_due``):
# longer than a tick takes to plan 1,000 of them; the first claim on each frees it.
PLAN_LEASE = timedelta(seconds=30)


def take_due(session: Session, now: datetime, limit: int, only: list[int] | None = None,
             lease: timedelta = PLAN_LEASE) -> list[Enrollment]:
    """The due enrollments one tick will walk, freshly read, oldest due first.

    On PostgreSQL many tick processes share the due work: each takes its rows with ``FOR
    UPDATE SKIP LOCKED`` and marks them ``taken_until`` now + ``lease`` in one short,
    committed statement, so the other ticks skip them instead of planning them too and
    losing every claim. Every claim frees the row again (``_claim_statement``), and a row
    whose tick died is free when the lease ends. Nothing else about it changes: the
    compare-and-set claims still decide who changes an enrollment. SQLite serves one
    process: the rows are read as they are.
    """
    where = [Enrollment.state == "active", Enrollment.next_due_at <= now,
             *([Enrollment.id.in_(only)] if only is not None else [])]
    order = (Enrollment.next_due_at, Enrollment.id)
    if session.get_bind().dialect.name != "postgresql":
        return list(session.exec(select(Enrollment).where(*where).order_by(*order).limit(limit)
                                 .execution_options(populate_existing=True)).all())
    free = or_(Enrollment.taken_until.is_(None), Enrollment.taken_until <= now)
    due = select(Enrollment.id).where(*where, free).order_by(*order).limit(limit).with_for_update(skip_locked=True)
    taken = list(session.connection().execute(
        update(Enrollment).where(Enrollment.id.in_(due.scalar_subquery())).values(taken_until=now + lease)
        .returning(Enrollment.id).execution_options(synchronize_session=False)).scalars())
    session.commit()
    if not taken:
        return []
    return list(session.exec(select(Enrollment).where(Enrollment.id.in_(taken)).order_by(*order)
                             .execution_options(populate_existing=True)).all())


def free(session: Session, enrollments: list[Enrollment]) -> None:
    """Give back rows this tick took and will not change after all (a batch claim undone),
    so the next tick takes them at once rather than after the lease (commits)."""
    ids = sorted(enrollment.id for enrollment in enrollments)
    if ids and session.get_bind().dialect.name == "postgresql":
        session.connection().execute(update(Enrollment).where(Enrollment.id.in_(ids)).values(taken_until=None)
                                     .execution_options(synchronize_session=False))
        session.commit()


def claim(session: Session, enrollment: Enrollment, expected: int | None = None, **values: Any) -> bool:
    """Take the right to change ``enrollment`` in the current transaction, or return False.

    ``expected`` is the version the caller decided on (default: the one it holds now);
    pass it when the decision was made earlier, since a rollback in between reloads the
    row. ``values`` are written in the same statement (saving a round trip on the send path).
    """
    seen = enrollment.version if expected is None else expected
    params = {"claim_id": enrollment.id, "claim_version": seen, "claim_next": seen + 1, **values}
    result = session.connection().execute(_claim_statement(tuple(sorted(values))), params)
    if result.rowcount != 1:
        return False
    _written(enrollment, seen + 1, values)
    return True


def _written(enrollment: Enrollment, version: int, values: dict[str, Any]) -> None:
    """Set on the object what a claim just wrote to its row (nothing left to flush)."""
    for name, value in {"version": version, **values}.items():
        set_committed_value(enrollment, name, value)


def claim_many(session: Session, claims: list[tuple[Enrollment, int]], **values: Any) -> set[int]:
    """``claim`` for many enrollments in one statement: each (enrollment, expected version).

    Returns the ids of those claimed; the others changed since their version was seen.
    ``values`` are written to every claimed row.
    """
    if not claims:
        return set()
    pairs = [(enrollment.id, expected) for enrollment, expected in claims]
    params = {"ids": sorted(pair[0] for pair in pairs), "claims": pairs, **values}
    claimed = set(session.connection().execute(_claim_many_statement(tuple(sorted(values))), params).scalars())
    for enrollment, expected in claims:
        if enrollment.id in claimed:
            _written(enrollment, expected + 1, values)
    return claimed


@lru_cache(maxsize=8)
def _claim_many_statement(names: tuple[str, ...]) -> Update:
    return (
        update(Enrollment)
        # The ids alone let SQLite find the rows by key; with only the pairs it scans the table.
        .where(Enrollment.id.in_(bindparam("ids", expanding=True)),
               tuple_(Enrollment.id, Enrollment.version).in_(bindparam("claims", expanding=True)))
        .values(version=Enrollment.version + 1, taken_until=None, **{name: bindparam(name) for name in names})
        .returning(Enrollment.id)
        .execution_options(synchronize_session=False)
    )


@lru_cache(maxsize=32)
def _claim_statement(names: tuple[str, ...]) -> Update:
    """Built once per set of extra columns: claims run on every step, building costs."""
    return (
        update(Enrollment)
        .where(Enrollment.id == bindparam("claim_id"), Enrollment.version == bindparam("claim_version"))
        .values(version=bindparam("claim_next"), taken_until=None, **{name: bindparam(name) for name in names})
        .execution_options(synchronize_session=False)
    )


def window_of(definition: dict) -> schedule.Window:
    """The sending window of a sequence definition (parsed once per distinct window)."""
    raw = definition.get("window")
    key = repr(raw)
    if key not in _WINDOWS:
        _WINDOWS[key] = schedule.Window.parse(raw)
    return _WINDOWS[key]


_WINDOWS: dict[str, schedule.Window] = {}


def enter_step(
    session: Session, now: datetime, enrollment: Enrollment, index: int, definition: dict, prospect: Prospect
) -> None:
    """Move to step ``index`` and set when it is due; past the last step, finish."""
    for kind, reason, detail in _position(now, enrollment, index, definition, prospect):
        decisions.record(session, now, kind, reason, enrollment=enrollment, **detail)
    session.add(enrollment)


@dataclass
class Move:
    """An enrollment to move on to its next step (``step_on``), with extra column values.

    ``expected`` is the version the mover's own claim left: a change made since (a stop
    rule, another worker) makes the move lose, even one made earlier in the same transaction.
    """

    enrollment: Enrollment
    expected: int
    definition: dict
    prospect: Prospect
    values: dict[str, Any] = field(default_factory=dict)


def step_on(session: Session, now: datetime, moves: list[Move]) -> set[int]:
    """Claim each enrollment and move it to its next step; return the ids moved.

    One executemany per set of columns written, when every claim holds (checked by the
    count of rows changed). When one does not (another worker changed that enrollment
    first), the statements are undone and each move is made alone, so the ones that
    lost write nothing. The decisions of each move are recorded with it.
    """
    planned = []
    for move in moves:
        position = SimpleNamespace()
        pending = _position(now, position, move.enrollment.current_step + 1, move.definition, move.prospect)  # type: ignore[arg-type]
        planned.append((move, {**vars(position), **move.values}, pending))
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for move, values, _ in planned:
        groups.setdefault(tuple(sorted(values)), []).append(
            {"claim_id": move.enrollment.id, "claim_version": move.expected, "claim_next": move.expected + 1,
             **values})
    savepoint = session.begin_nested()
    if all(session.connection().execute(_claim_statement(names), rows).rowcount == len(rows)
           for names, rows in groups.items()):
        savepoint.commit()
        moved = planned
        for move, values, _ in moved:
            _written(move.enrollment, move.expected + 1, values)
    else:
        savepoint.rollback()
        moved = [(move, values, pending) for move, values, pending in planned
                 if claim(session, move.enrollment, move.expected, **values)]
    for move, _, pending in moved:
        for kind, reason, detail in pending:
            decisions.record(session, now, kind, reason, enrollment=move.enrollment, **detail)
    return {move.enrollment.id for move, _, _ in moved}


def _position(
    now: datetime, enrollment: Enrollment, index: int, definition: dict, prospect: Prospect
) -> list[tuple[str, str, dict[str, Any]]]:
    """Set the columns of being at step ``index``; return the decisions that go with it."""
    steps = definition["steps"]
    enrollment.waiting_for = ""
    enrollment.wait_timeout_at = None
    enrollment.current_step = index
    if index >= len(steps):
        return [_finished(now, enrollment)]
    step = steps[index]
    window = window_of(definition)
    enrollment.step_started_at = now
    if step["kind"] == "wait":
        enrollment.next_due_at = schedule.wait_until(now, step["wait"], window, prospect.timezone, prospect.country)
        return [("waiting", f"wait {describe_wait(step['wait'])}", {"until": enrollment.next_due_at.isoformat()})]
    if step["kind"] == "wait_for_signal":
        timeout = schedule.wait_until(now, step["timeout"], window, prospect.timezone, prospect.country)
        enrollment.waiting_for = step["signal"]
        enrollment.wait_timeout_at = timeout
        enrollment.next_due_at = timeout
        return [("waiting", f"waiting for signal {step['signal']!r}", {"until": timeout.isoformat()})]
    enrollment.next_due_at = schedule.next_open(now, window, prospect.timezone, prospect.country)
    return []


def describe_wait(wait: dict) -> str:
    """``{business_days: 1}`` -> "1 business day"; ``{hours: 48}`` -> "48 hours"."""
    (unit, value), = wait.items()
    words = unit.replace("_", " ")
    return f"{value:g} {words[:-1] if value == 1 else words}"


def finish(session: Session, now: datetime, enrollment: Enrollment) -> None:
    kind, reason, detail = _finished(now, enrollment)
    session.add(enrollment)
    decisions.record(session, now, kind, reason, enrollment=enrollment, **detail)


def _finished(now: datetime, enrollment: Enrollment) -> tuple[str, str, dict[str, Any]]:
    enrollment.state = "finished"
    enrollment.next_due_at = None
    enrollment.finished_at = now
    return "finished", "all steps done", {}


def stop(session: Session, now: datetime, enrollment: Enrollment, reason: str, rule: str = "", **detail: Any) -> None:
    """Stop for good (the caller has claimed the enrollment)."""
    enrollment.state = "stopped"
    enrollment.reason = reason
    enrollment.rule = rule
    enrollment.next_due_at = None
    enrollment.finished_at = now
    session.add(enrollment)
    decisions.record(session, now, "stopped", reason, enrollment=enrollment, rule=rule, **detail)


def pause(
    session: Session, now: datetime, enrollment: Enrollment, reason: str, until: datetime | None = None,
    rule: str = "", **detail: Any,
) -> None:
    """Pause, until a time or until someone resumes it (the caller has claimed it)."""
    enrollment.state = "paused"
    enrollment.reason = reason
    enrollment.rule = rule
    enrollment.paused_until = until
    session.add(enrollment)
    decisions.record(session, now, "paused", reason, enrollment=enrollment, rule=rule,
                     until=until.isoformat() if until else None, **detail)


def resume(session: Session, now: datetime, enrollment: Enrollment, reason: str, prospect: Prospect) -> None:
    """Make a paused enrollment active again; its current step becomes due in the window."""
    version = session.get(SequenceVersion, enrollment.sequence_version_id)
    enrollment.state = "active"
    enrollment.paused_until = None
    enrollment.reason = ""
    enrollment.rule = ""
    window = window_of(version.definition)
    enrollment.next_due_at = schedule.next_open(now, window, prospect.timezone, prospect.country)
    session.add(enrollment)
    decisions.record(session, now, "resumed", reason, enrollment=enrollment)


def defer(session: Session, now: datetime, enrollment: Enrollment, until: datetime | None, reason: str,
          guard: str) -> None:
    """The current step waits until ``until`` (a guard, a cap, a gap); the caller has claimed it."""
    enrollment.next_due_at = until
    session.add(enrollment)
    decisions.record(session, now, "deferred", reason, enrollment=enrollment, guard=guard,
                     until=until.isoformat() if until else None)


def await_task(session: Session, enrollment: Enrollment) -> None:
    """The current step is a person's task: nothing is due until it is done (``complete_task``)."""
    enrollment.waiting_for = "task"
    enrollment.next_due_at = None
    session.add(enrollment)


def resend_step(session: Session, enrollment: Enrollment, step_index: int, at: datetime,
                forget_thread: bool) -> None:
    """Go back to ``step_index`` and send it again at ``at`` (a retry after a soft refusal).

    ``forget_thread``: the bounced email started the thread, so the resend starts it anew.
    """
    if forget_thread:
        enrollment.thread_message_id, enrollment.thread_subject = "", ""
    enrollment.state, enrollment.current_step, enrollment.waiting_for = "active", step_index, ""
    enrollment.next_due_at = at
    session.add(enrollment)


def move_to_version(session: Session, now: datetime, enrollment: Enrollment, version: SequenceVersion) -> bool:
    """Put a running enrollment on ``version`` at the step it is on (``sequences load --upgrade running``).

    A claim like every other change, so a tick stepping it at the same moment wins and this
    returns False; the caller has checked that the steps line up (``versions.line_up_problem``).
    """
    before = enrollment.sequence_version_id
    if not claim(session, enrollment, sequence_version_id=version.id):
        return False
    decisions.record(session, now, "upgraded", f"moved to {version.name} v{version.version} at step "
                     f"{enrollment.current_step + 1}", enrollment=enrollment, from_version_id=before,
                     to_version_id=version.id)
    return True


def wake(session: Session, now: datetime, enrollment: Enrollment) -> None:
    """A waited-for signal arrived: the wait is over and the next step is due now."""
    enrollment.waiting_for = ""
    enrollment.next_due_at = now
    session.add(enrollment)


def create(
    session: Session, now: datetime, prospect: Prospect, version: SequenceVersion, signal: Signal | None
) -> SimpleNamespace:
    """A new active enrollment on ``version``, positioned at its first step; its stored values.

    Written with one INSERT of the finished row, and not built as an ORM object:
    enrollments are created by the thousand when a signal burst arrives, and building
    the object cost more than the INSERT. ``session.get(Enrollment, row.id)`` loads it.
    """
    row = SimpleNamespace(**_DEFAULTS, prospect_id=prospect.id, sequence_version_id=version.id,
                          sequence_name=version.name, enrolled_at=now, signal_id=signal.id if signal else None)
    first = _position(now, row, 0, version.definition, prospect)  # type: ignore[arg-type]
    row.id = session.connection().execute(_INSERT, vars(row)).scalar_one()
    decisions.record(
        session, now, "enrolled",
        f"{signal.type} signal" if signal else "enrolled by hand",
        enrollment=row, step_index=0, signal_id=signal.id if signal else None,  # type: ignore[arg-type]
        sequence=version.name, version=version.version,
    )
    for kind, reason, detail in first:
        decisions.record(session, now, kind, reason, enrollment=row, **detail)  # type: ignore[arg-type]
    return row


# The columns with a default (all plain values); ``create`` gives the others.
_DEFAULTS = {name: field.default for name, field in Enrollment.model_fields.items()
             if name not in ("id", "enrolled_at", "signal_id") and not field.is_required()}
_INSERT = insert(Enrollment).returning(Enrollment.id)


def cooldown_blocks(session: Session, now: datetime, prospect_id: int, version: SequenceVersion) -> str:
    """Why this prospect may not be enrolled again yet, or "" when they may.

    Only the latest enrollment matters: a running one is always the latest, because
    no new one can start while it runs.
    """
    latest = session.exec(
        select(Enrollment.state, Enrollment.enrolled_at)
        .where(Enrollment.prospect_id == prospect_id, Enrollment.sequence_name == version.name)
        .order_by(Enrollment.enrolled_at.desc(), Enrollment.id.desc())
        .limit(1)
    ).first()
    if latest is None:
        return ""
    return cooldown_reason(now, version, *latest)


def overlap_reason(version: SequenceVersion, running: set[str], overlapping: set[str]) -> str:
    """Why a prospect running ``running`` sequences may not start ``version``'s too, or "".

    One active sequence per prospect by default: two sequences mailing one person at once
    read as spam and make a reply hard to attribute. A sequence whose file says
    ``allow_overlap: true`` (``overlapping`` names those) may run beside any other.
    """
    if version.definition.get("allow_overlap"):
        return ""
    others = sorted(set(running) - {version.name} - overlapping)
    if not others:
        return ""
    return f"already in {', '.join(others)} (one active sequence per prospect; allow_overlap: true opts out)"


def running_sequences(session: Session, prospect_id: int) -> set[str]:
    """The sequences the prospect has an active or paused enrollment in."""
    return set(session.exec(select(Enrollment.sequence_name).where(
        Enrollment.prospect_id == prospect_id, Enrollment.state.in_(ACTIVE_STATES))).all())


def overlapping_sequences(session: Session, names: set[str]) -> set[str]:
    """Those of ``names`` whose current version allows overlap."""
    if not names:
        return set()
    rows = session.exec(select(SequenceVersion.name, SequenceVersion.definition).where(
        SequenceVersion.name.in_(sorted(names)), SequenceVersion.is_current)).all()
    return {name for name, definition in rows if (definition or {}).get("allow_overlap")}


def enroll_blocks(session: Session, now: datetime, prospect_id: int, version: SequenceVersion) -> str:
    """Why this prospect may not be enrolled in ``version`` now (cool-down, overlap), or ""."""
    running = running_sequences(session, prospect_id)
    return cooldown_blocks(session, now, prospect_id, version) or overlap_reason(
        version, running, overlapping_sequences(session, running))


def cooldown_reason(now: datetime, version: SequenceVersion, state: str, last: datetime | None) -> str:
    """Why a prospect whose latest enrollment in ``version``'s sequence is (state, last) must wait."""
    if state in ACTIVE_STATES:
        return f"already in {version.name}"
    days = version.definition["trigger"].get("cooldown_days", 0)
    if last is not None and now - last < timedelta(days=days):
        return f"re-enrollment cool-down: last enrolled {last:%Y-%m-%d}, cool-down {days} days"
    return ""
