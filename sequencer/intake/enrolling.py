"""Acting on stored signals: enroll the prospects a trigger selects, wake waiting steps.

Signals are processed in batches, one transaction per batch: what every signal needs
(its prospect, the account, the suppression list, the latest enrollments) is read with
one query per kind for the whole batch. A batch is all or nothing. When one signal in
it cannot go through with the others (a refused payload, a race lost to another worker
on the same prospect), the batch is rolled back and its signals are processed one at a
time, each in its own transaction, exactly as ``process`` does for a lone signal.

Lock order, the same on every path (a lone signal, a batch, the tick, a Celery task):
first the signal rows, claimed in id order with ``FOR UPDATE SKIP LOCKED`` (a signal
another transaction holds is its work, not ours: we skip it instead of waiting), then
prospects and enrollments. A path that inserted enrollments before claiming its signals
could wait for a lone signal's claim while that one waited for its enrollment: the
deadlock the chaos run found. What can still collide (two batches enrolling the same two
new prospects in opposite orders) is a lost race: a deadlock, a serialization failure or
SQLite's busy lock rolls the batch back and it is tried again, never a failed task; a
signal that loses every try stays unprocessed, and the next tick takes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from types import SimpleNamespace

from sqlalchemy import Update, bindparam, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, select

from sequencer.core import db, decisions
from sequencer.core.models import Account, Enrollment, Prospect, SequenceVersion, Signal
from sequencer.enrollments import lifecycle
from sequencer.intake.prospects import create_for_signals, upsert_prospect
from sequencer.sequences import triggers
from sequencer.sequences.context import values_of
from sequencer.sequences.versions import current_versions
from suppression.models import SuppressionEntry
from suppression.store import find_suppression, find_suppressions


@dataclass
class SignalOutcome:
    signal_id: int
    enrolled: list[int] = field(default_factory=list)
    woken: list[int] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


class _OneByOne(Exception):
    """A signal in a batch needs its own transaction; the batch is retried one by one."""


LOCK_TRIES = 4  # a deadlock or busy lock is a lost race: the transaction is tried again this often
LEFT_FOR_TICK = "left for the next tick: lost every try to a concurrent transaction"


# What a caller above intake does with a signal once it is processed, in the same transaction:
# the engine passes ``sequencer.rules.actions.react_to_signal`` (a reply or meeting_booked signal
# meets the stop rules), which intake cannot import (the rules are a layer above it).
Reaction = Callable[[Session, datetime, Signal, list[Prospect]], None]


def process(session: Session, now: datetime, signal: Signal, react: Reaction | None = None) -> SignalOutcome:
    """Enroll and wake for one signal, then mark it processed; one transaction.

    Safe to call from several processes at once: the signal is claimed first (only one
    caller gets it; the others stop at "already processed"), and two different signals
    racing to enroll the same prospect meet the unique index on running enrollments; the
    loser retries and then finds the enrollment already there.
    """
    signal_id = signal.id
    for _ in range(LOCK_TRIES):
        try:
            return _process_single(session, now, signal, react)
        except IntegrityError:
            session.rollback()  # the race on a prospect was lost: the retry finds the winner's rows
        except OperationalError as exc:
            if not db.is_lock_conflict(exc):
                raise
            session.rollback()
    return SignalOutcome(signal_id, skipped=[LEFT_FOR_TICK])


def process_batch(session: Session, now: datetime, batch: list[Signal],
                  keep: list | None = None, react: Reaction | None = None) -> list[SignalOutcome]:
    """``process`` for every signal of ``batch``, in order, in one transaction when it can be.

    ``keep`` receives the rows read and created, so a caller that goes on with them (the
    tick) finds them in the session instead of loading them again. A signal another
    worker holds or has processed comes back as "already processed".
    """
    if len(batch) <= 1:
        return [process(session, now, signal, react) for signal in batch]
    for _ in range(LOCK_TRIES):
        try:
            return _process_batch(session, now, batch, keep, react)
        except (_OneByOne, IntegrityError):
            session.rollback()
            break
        except OperationalError as exc:
            if not db.is_lock_conflict(exc):
                raise
            session.rollback()
    return [process(session, now, signal, react) for signal in batch]


PROCESS_BATCH = 500  # signals processed in one transaction by ``process_stored``


def process_stored(session: Session, now: datetime, ids: list[int],
                   react: Reaction | None = None) -> list[SignalOutcome]:
    """``process_batch`` for the signals with these ids, ``PROCESS_BATCH`` at a time in id order.

    For callers that hold ids, not rows (a file import, an HTTP batch, a Celery task);
    an id that is gone or already processed costs nothing. Only one batch of rows is
    held at a time.
    """
    outcomes: list[SignalOutcome] = []
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), PROCESS_BATCH):
        part = ordered[start:start + PROCESS_BATCH]
        batch = list(session.exec(select(Signal).where(Signal.id.in_(part), Signal.processed_at.is_(None))
                                  .order_by(Signal.id)))
        outcomes.extend(process_batch(session, now, batch, react=react))
    return outcomes


def _process_batch(session: Session, now: datetime, batch: list[Signal], keep: list | None,
                   react: Reaction | None) -> list[SignalOutcome]:
    taken = claim(session, now, [signal.id for signal in batch])
    mine = [signal for signal in batch if signal.id in taken]
    with session.no_autoflush:
        context = _Context.read(session, now, mine, create=True)
    context.react = react
    with decisions.batched(session):
        done = {signal.id: _process(session, now, signal, context, in_batch=True) for signal in mine}
    _record_subjects(session, context.subjects)
    session.commit()
    if keep is not None:
        keep.extend([*context.prospects.values(), *context.accounts.values()])
    return [done.get(signal.id) or SignalOutcome(signal.id, skipped=["already processed"]) for signal in batch]


def claim(session: Session, now: datetime, ids: list[int]) -> set[int]:
    """Take the unprocessed signals among ``ids`` for this transaction; return the ids taken.

    One statement: the rows are locked in id order and those another transaction holds
    are skipped (PostgreSQL), and ``processed_at`` is set at once, so the claim is the
    first write of the transaction (on SQLite it takes the database's write lock before
    anything else is written). Nobody sees the mark before the transaction commits.
    """
    if not ids:
        return set()
    return set(session.connection().execute(_claim_statement(), {"ids": sorted(ids), "processed_at": now}).scalars())


def _process_single(session: Session, now: datetime, signal: Signal, react: Reaction | None) -> SignalOutcome:
    if not claim(session, now, [signal.id]):
        session.rollback()
        return SignalOutcome(signal.id, skipped=["already processed"])
    context = _Context.read(session, now, [signal])
    context.react = react
    outcome = _process(session, now, signal, context, in_batch=False)
    _record_subjects(session, context.subjects)
    session.commit()
    return outcome


@dataclass
class _Context:
    """What a batch of signals needs, read up front; kept current as the batch enrolls."""

    versions: list[SequenceVersion]
    prospects: dict[str, Prospect]  # by email
    accounts: dict[int, Account]
    suppressed: dict[tuple[str | None, int | None], SuppressionEntry | None]
    latest: dict[tuple[int, str], tuple[str, datetime | None]]  # (prospect, sequence) -> state, enrolled at
    waiting: dict[int, list[Enrollment]]  # prospect -> enrollments waiting for a signal
    known: set[int]  # prospects whose ``latest`` and ``waiting`` are read
    subjects: list[dict] = field(default_factory=list)  # whom each claimed signal is about, written at the end
    react: Reaction | None = None
    running: dict[int, set[str]] = field(default_factory=dict)  # prospect -> sequences it is active in
    overlapping: set[str] = field(default_factory=set)  # sequences that allow overlap (allow_overlap: true)
    created: set[str] = field(default_factory=set)  # addresses made by ``read``, their decision not yet recorded

    @classmethod
    def read(cls, session: Session, now: datetime, batch: list[Signal], create: bool = False) -> _Context:
        """Everything the batch needs; with ``create``, the prospects of people not yet known are
        made here, all together (``prospects.create_for_signals``), each from its first signal."""
        emails = sorted({s.email for s in batch if s.email})
        prospects = {p.email: p for p in _in(session, Prospect, Prospect.email, emails)}
        created: set[str] = set()
        made: list[Account] = []
        if create:
            wanted: dict[str, dict] = {}
            for signal in batch:
                if signal.email and signal.email not in prospects and signal.email not in wanted:
                    wanted[signal.email] = dict(signal.payload)
            new, made = create_for_signals(session, now, wanted)
            prospects.update(new)
            created = set(new) & set(wanted)
        accounts = {a.id: a for a in _in(session, Account, Account.id,
                                          sorted({p.account_id for p in prospects.values() if p.account_id}
                                                 - {a.id for a in made}))}
        accounts.update({a.id: a for a in made})
        context = cls(current_versions(session), prospects, accounts, {}, {}, {}, set(), created=created)
        context.overlapping = {v.name for v in context.versions if v.definition.get("allow_overlap")}
        context.learn(session, now, list(prospects.values()))
        return context

    def learn(self, session: Session, now: datetime, prospects: list[Prospect]) -> None:
        """Read suppression, latest enrollments and waiting steps for prospects not yet known."""
        new = [p for p in prospects if p.id not in self.known]
        if not new:
            return
        ids = sorted({p.id for p in new})
        self.suppressed.update(find_suppressions(session, now, [(p.email, p.account_id) for p in new]))
        rows = session.exec(
            select(Enrollment.prospect_id, Enrollment.sequence_name, Enrollment.state, Enrollment.enrolled_at)
            .where(Enrollment.prospect_id.in_(ids))
            .order_by(Enrollment.enrolled_at, Enrollment.id)
        ).all()
        for prospect_id, name, state, enrolled_at in rows:  # oldest first: the last one stays
            self.latest[(prospect_id, name)] = (state, enrolled_at)
            if state in lifecycle.ACTIVE_STATES:
                self.running.setdefault(prospect_id, set()).add(name)
        for enrollment in _in(session, Enrollment, Enrollment.prospect_id, ids,
                              Enrollment.state == "active", Enrollment.waiting_for != ""):
            self.waiting.setdefault(enrollment.prospect_id, []).append(enrollment)
        self.known.update(ids)

    def suppression(self, session: Session, now: datetime, prospect: Prospect) -> SuppressionEntry | None:
        key = (prospect.email, prospect.account_id)
        if key not in self.suppressed:  # a garbage address: let the lone lookup raise with the reason
            self.suppressed[key] = find_suppression(session, now, *key)
        return self.suppressed[key]

    def enrolled(self, session: Session, now: datetime, row: SimpleNamespace) -> None:
        """Count an enrollment the batch created (``lifecycle.create``'s row)."""
        self.latest[(row.prospect_id, row.sequence_name)] = (row.state, now)
        self.running.setdefault(row.prospect_id, set()).add(row.sequence_name)
        if row.state == "active" and row.waiting_for:  # a later signal of the batch may wake it
            self.waiting.setdefault(row.prospect_id, []).append(session.get(Enrollment, row.id))


def _in(session: Session, model: type, column, values: list, *where) -> list:
    if not values:
        return []
    return list(session.exec(select(model).where(column.in_(values), *where)))


def _process(session: Session, now: datetime, signal: Signal, context: _Context, *, in_batch: bool) -> SignalOutcome:
    outcome = SignalOutcome(signal.id)
    try:
        if in_batch:
            prospects, account = _subjects(session, now, signal, context)
        else:
            with session.begin_nested():  # a prospect half-made from a bad payload is undone; the claim stays
                prospects, account = _subjects(session, now, signal, context)
    except ValueError as exc:
        if in_batch:
            raise _OneByOne from exc
        # The signal stays stored; it is marked processed (by its claim) so one bad payload
        # cannot block every later tick, and the reason is in the decision log.
        decisions.record(session, now, "signal_refused", f"{signal.type} for {signal.email}: {exc}",
                         signal_id=signal.id)
        outcome.skipped.append(f"{signal.email}: {exc}")
        set_committed_value(signal, "processed_at", now)
        return outcome
    context.learn(session, now, prospects)
    about = {"prospect_id": prospects[0].id if signal.email else None,
             "account_id": account.id if account else None}
    context.subjects.append({"subject_id": signal.id, **about})
    for name, value in {"processed_at": now, **about}.items():
        set_committed_value(signal, name, value)
    for version in context.versions:
        trigger = version.definition["trigger"]
        if signal.type not in trigger["signals"]:
            continue
        candidates = prospects
        if not signal.email:
            scope = trigger.get("account_scope", "all")
            candidates = [] if scope == "none" else prospects
        enrolled_here = 0
        for prospect in candidates:
            if not signal.email and trigger.get("account_scope") == "first" and enrolled_here:
                break
            reason = _why_not(session, now, prospect, account, signal, version, context)
            if reason:
                outcome.skipped.append(f"{prospect.email} / {version.name}: {reason}")
                decisions.record(session, now, "not_enrolled", reason, prospect_id=prospect.id,
                                 signal_id=signal.id, sequence=version.name)
                continue
            enrollment = lifecycle.create(session, now, prospect, version, signal)
            context.enrolled(session, now, enrollment)
            outcome.enrolled.append(enrollment.id)
            enrolled_here += 1
    outcome.woken = _wake(session, now, signal, prospects, context)
    if context.react is not None:
        context.react(session, now, signal, prospects)
    return outcome


@lru_cache(maxsize=1)
def _claim_statement() -> Update:
    """UPDATE signal SET processed_at WHERE id IN (the unprocessed of :ids, id order, FOR UPDATE SKIP LOCKED)."""
    free = (
        select(Signal.id)
        .where(Signal.id.in_(bindparam("ids", expanding=True)), Signal.processed_at.is_(None))
        .order_by(Signal.id)
        .with_for_update(skip_locked=True)  # SQLite renders nothing: its write lock already serializes
    )
    return (
        update(Signal)
        .where(Signal.id.in_(free.scalar_subquery()), Signal.processed_at.is_(None))
        .values(processed_at=bindparam("processed_at"))
        .returning(Signal.id)
        .execution_options(synchronize_session=False)
    )


@lru_cache(maxsize=1)
def _subjects_statement() -> Update:
    return (
        update(Signal)
        .where(Signal.id == bindparam("subject_id"))
        .values(prospect_id=bindparam("prospect_id"), account_id=bindparam("account_id"))
        .execution_options(synchronize_session=False)
    )


def _record_subjects(session: Session, subjects: list[dict]) -> None:
    """Write whom each claimed signal is about (one executemany; the rows are ours, claimed)."""
    if subjects:
        session.connection().execute(_subjects_statement(), subjects)


def _subjects(session: Session, now: datetime, signal: Signal,
              context: _Context) -> tuple[list[Prospect], Account | None]:
    """The prospects a signal is about: the one named, or everyone at the account's domain."""
    if signal.email:
        prospect = context.prospects.get(signal.email)
        if prospect is None:
            prospect = upsert_prospect(session, now, signal.email, dict(signal.payload))
            context.prospects[prospect.email] = prospect
            context.created.add(prospect.email)
        if prospect.email in context.created:  # made for this signal, here or by ``read``
            context.created.discard(prospect.email)
            decisions.record(session, now, "prospect_created", f"from {signal.type} signal",
                             prospect_id=prospect.id, signal_id=signal.id)
        account = None
        if prospect.account_id:
            account = context.accounts.get(prospect.account_id) or session.get(Account, prospect.account_id)
        return [prospect], account
    account = session.exec(select(Account).where(Account.domain == signal.domain)).first()
    if account is None:
        return [], None
    prospects = list(session.exec(select(Prospect).where(Prospect.account_id == account.id).order_by(Prospect.id)))
    return prospects, account


def _why_not(session: Session, now: datetime, prospect: Prospect, account: Account | None,
             signal: Signal, version: SequenceVersion, context: _Context) -> str:
    values = values_of(prospect, account, signal)
    failed = triggers.failed_filters(version.definition["trigger"].get("filters", {}), values)
    if failed:
        return "filters not met: " + "; ".join(failed)
    entry = context.suppression(session, now, prospect)
    if entry is not None:
        return f"suppressed: {entry.reason} ({entry.kind} {entry.value})"
    latest = context.latest.get((prospect.id, version.name))
    return (lifecycle.cooldown_reason(now, version, *latest) if latest else "") or lifecycle.overlap_reason(
        version, context.running.get(prospect.id, set()), context.overlapping)


def _wake(session: Session, now: datetime, signal: Signal, prospects: list[Prospect],
          context: _Context) -> list[int]:
    """Make wait-for-signal steps waiting for this signal type due now."""
    woken = []
    for prospect in prospects:
        for enrollment in context.waiting.get(prospect.id, []):
            if enrollment.state != "active" or enrollment.waiting_for != signal.type:
                continue
            if not lifecycle.claim(session, enrollment):
                continue
            lifecycle.wake(session, now, enrollment)
            decisions.record(session, now, "woken", f"{signal.type} signal arrived", enrollment=enrollment,
                             signal_id=signal.id)
            woken.append(enrollment.id)
    return woken
