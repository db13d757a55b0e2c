"""The engine's heartbeat: find due enrollments and advance each by one step.

``tick`` is the whole scheduler: it processes stored signals, resumes pauses that
ended, then walks every active enrollment whose ``next_due_at`` has passed. It takes a
session and a clock and keeps no state of its own, so the embedded loop, a Celery task
and a test all call the same code.

A touch moves claimed -> sending -> sent (or queued, for a person's task); the row is
unique per (enrollment, step) and the claim is a compare-and-set on the enrollment, so a
step happens at most once however many ticks race. A crash between "sending" and "sent"
is found later and recorded as "unknown" rather than sent twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm.util import identity_key
from sqlmodel import Session, select

from sequencer.core.clock import Clock
from sequencer.core.models import Account, Enrollment, Prospect, SequenceVersion, Touch
from sequencer.engine import send_batch, steps
from sequencer.engine.runtime import Runtime
from sequencer.engine.tick_state import TickState
from sequencer.enrollments import lifecycle
from sequencer.intake import enrolling, signals
from sequencer.rules.reactions import signal_reaction
from sequencer.sending import caps
from suppression.store import find_suppressions

MAX_STEPS_PER_TICK = 20
SEND_BATCH = 200  # planned emails claimed, sent and recorded together


@dataclass
class TickReport:
    signals: int = 0
    advanced: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


def tick(session: Session, clock: Clock, runtime: Runtime, limit: int = 1000) -> TickReport:
    """Process pending signals, resume expired pauses, then advance every due enrollment.

    Email touches that pass their guards are planned as the due enrollments are walked
    and sent in batches of ``SEND_BATCH`` (see ``send_batch.send_planned``); every other
    step happens as it is reached.
    """
    report = TickReport()
    state = TickState(session)
    pending = signals.unprocessed(session, limit)
    state.rows.extend(pending)  # kept referenced: touches read their enrolling signal back for templates
    report.signals = len(enrolling.process_batch(session, clock.now(), pending, state.rows,
                                                    react=signal_reaction(runtime.rules)))
    resume_expired_pauses(session, clock.now())
    due = _load_due(session, clock.now(), runtime, state, limit)
    _walk(session, clock, runtime, state, due, report)
    return report


def act_on_signals(session: Session, clock: Clock, runtime: Runtime, signal_ids: list[int]) -> TickReport:
    """Process these stored signals now, and take at once the steps they made due.

    What a signal enrolls or wakes whose step is due now (an email inside the window)
    goes out in this same pass, through the same steps and guards as a tick's; what is
    not due yet waits for the tick. A signal another worker holds is left to it. For
    the HTTP API's Celery task and the embedded loop: speed to lead is one pass, not
    the tick interval.
    """
    report = TickReport()
    state = TickState(session)
    outcomes = enrolling.process_stored(session, clock.now(), signal_ids, react=signal_reaction(runtime.rules))
    report.signals = len(outcomes)
    started = sorted({i for outcome in outcomes for i in (*outcome.enrolled, *outcome.woken)})
    if started:
        _walk(session, clock, runtime, state, _load_due(session, clock.now(), runtime, state, len(started),
                                                        only=started), report)
    return report


def _walk(session: Session, clock: Clock, runtime: Runtime, state: TickState, due: list[Enrollment],
          report: TickReport) -> None:
    """Advance each of ``due`` as far as it goes now; emails are sent in batches of ``SEND_BATCH``."""
    outbox: list[send_batch.PlannedEmail] = []
    for enrollment in due:
        report.advanced += 1
        # A wait that ends makes the next step due at once; take it in the same tick. A
        # touch ends the enrollment's turn, so two touches never go out in one instant.
        for _ in range(MAX_STEPS_PER_TICK):
            outcome = steps.take(session, clock.now(), runtime, state, enrollment, outbox)
            if outcome not in ("not_due", "planned"):
                report.count(outcome)
            if outcome not in ("waited", "repaired", "unknown"):
                break
        if len(outbox) >= SEND_BATCH:
            for outcome in send_batch.send_planned(session, clock.now(), runtime, outbox):
                report.count(outcome)
            outbox = []
    for outcome in send_batch.send_planned(session, clock.now(), runtime, outbox):
        report.count(outcome)


def advance(session: Session, now: datetime, runtime: Runtime, enrollment: Enrollment) -> str:
    """Advance one enrollment by one step if it is still due; return what happened."""
    outbox: list[send_batch.PlannedEmail] = []
    outcome = steps.take(session, now, runtime, TickState(session), enrollment, outbox)
    return send_batch.send_planned(session, now, runtime, outbox)[0] if outbox else outcome


def resume_expired_pauses(session: Session, now: datetime) -> int:
    paused = session.exec(
        select(Enrollment).where(Enrollment.state == "paused", Enrollment.paused_until <= now)
    ).all()
    for enrollment in paused:
        if lifecycle.claim(session, enrollment):
            prospect = session.get(Prospect, enrollment.prospect_id)
            lifecycle.resume(session, now, enrollment, "pause ended", prospect)
    session.commit()
    return len(paused)


def _load_due(session: Session, now: datetime, runtime: Runtime, state: TickState,
              limit: int, only: list[int] | None = None) -> list[Enrollment]:
    """The due enrollments, freshly read, with everything their steps will look at.

    One query per kind for the whole batch instead of several per enrollment: prospects,
    accounts, versions, the touches they already have, their suppression verdicts and
    their recipient domains' cap counters. A row another worker changes after this read
    is caught by the compare-and-set in ``claim``. ``only``: of these enrollments.
    """
    due = lifecycle.take_due(session, now, limit, only)  # several ticks on PostgreSQL share them out
    state.rows.extend(due)
    prospects = _by_id(session, Prospect, {e.prospect_id for e in due})
    state.rows.extend(prospects)
    state.rows.extend(_by_id(session, Account, {p.account_id for p in prospects if p.account_id}))
    state.rows.extend(_by_id(session, SequenceVersion, {e.sequence_version_id for e in due}))
    state.touches = {(t.enrollment_id, t.step_index): t for t in session.exec(
        select(Touch).where(Touch.enrollment_id.in_([e.id for e in due]))).all()} if due else {}
    state.suppressed = find_suppressions(session, now, [(p.email, p.account_id) for p in prospects])
    state.tally.read([cap.key for p in prospects
                      for cap in caps.recipient_caps(runtime.settings, p.email.rpartition("@")[2], now)])
    return due


def _by_id(session: Session, model: type, ids: set[int]) -> list:
    """The rows with these ids; those the session holds already (read this tick) are not read again."""
    held = [row for row in (session.identity_map.get(identity_key(model, id_)) for id_ in ids) if row is not None]
    missing = ids - {row.id for row in held}
    if missing:
        held.extend(session.exec(select(model).where(model.id.in_(missing))).all())
    return held
