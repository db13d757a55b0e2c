"""Acting on a stored signal: enroll the prospects a trigger selects, wake waiting steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, select

from sequencer import decisions, enrollments, triggers
from sequencer.models import Account, Enrollment, Prospect, Signal
from sequencer.prospects import upsert_prospect
from sequencer.sequences import current_versions
from suppression.store import find_suppression


@dataclass
class SignalOutcome:
    signal_id: int
    enrolled: list[int] = field(default_factory=list)
    woken: list[int] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def process(session: Session, now: datetime, signal: Signal) -> SignalOutcome:
    """Enroll and wake for one signal, then mark it processed; one transaction.

    Safe to call from several processes at once: the signal is claimed first (only one
    caller sees it unprocessed), and two different signals racing to enroll the same
    prospect meet the unique index on running enrollments; the loser retries and then
    finds the enrollment already there.
    """
    try:
        return _process(session, now, signal)
    except IntegrityError:
        session.rollback()
        return _process(session, now, signal)


def _process(session: Session, now: datetime, signal: Signal) -> SignalOutcome:
    outcome = SignalOutcome(signal.id)
    try:
        prospects, account = _subjects(session, now, signal)
    except ValueError as exc:
        # The signal stays stored; it is marked processed so one bad payload cannot
        # block every later tick, and the reason is in the decision log.
        session.rollback()
        decisions.record(session, now, "signal_refused", f"{signal.type} for {signal.email}: {exc}",
                         signal_id=signal.id)
        outcome.skipped.append(f"{signal.email}: {exc}")
        signal.processed_at = now
        session.add(signal)
        session.commit()
        return outcome
    # The claim: only one caller sees the signal unprocessed; the others stop here.
    about = {"prospect_id": prospects[0].id if signal.email else None,
             "account_id": account.id if account else None}
    claimed = session.execute(
        update(Signal)
        .where(Signal.id == signal.id, Signal.processed_at.is_(None))
        .values(processed_at=now, **about)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        session.rollback()
        outcome.skipped.append("already processed")
        return outcome
    for name, value in {"processed_at": now, **about}.items():
        set_committed_value(signal, name, value)
    for version in current_versions(session):
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
            reason = _why_not(session, now, prospect, account, signal, version)
            if reason:
                outcome.skipped.append(f"{prospect.email} / {version.name}: {reason}")
                decisions.record(session, now, "not_enrolled", reason, prospect_id=prospect.id,
                                 signal_id=signal.id, sequence=version.name)
                continue
            enrollment = enrollments.create(session, now, prospect, version, signal)
            outcome.enrolled.append(enrollment.id)
            enrolled_here += 1
    outcome.woken = _wake(session, now, signal, prospects)
    session.commit()
    return outcome


def _subjects(session: Session, now: datetime, signal: Signal) -> tuple[list[Prospect], Account | None]:
    """The prospects a signal is about: the one named, or everyone at the account's domain."""
    if signal.email:
        prospect = session.exec(select(Prospect).where(Prospect.email == signal.email)).first()
        if prospect is None:
            prospect = upsert_prospect(session, now, signal.email, dict(signal.payload))
            decisions.record(session, now, "prospect_created", f"from {signal.type} signal",
                             prospect_id=prospect.id, signal_id=signal.id)
        account = session.get(Account, prospect.account_id) if prospect.account_id else None
        return [prospect], account
    account = session.exec(select(Account).where(Account.domain == signal.domain)).first()
    if account is None:
        return [], None
    prospects = list(session.exec(select(Prospect).where(Prospect.account_id == account.id).order_by(Prospect.id)))
    return prospects, account


def _why_not(session: Session, now: datetime, prospect: Prospect, account: Account | None,
             signal: Signal, version) -> str:
    context = enrollments.context_of(prospect, account, signal)
    failed = triggers.failed_filters(version.definition["trigger"].get("filters", {}), context)
    if failed:
        return "filters not met: " + "; ".join(failed)
    entry = find_suppression(session, now, prospect.email, prospect.account_id)
    if entry is not None:
        return f"suppressed: {entry.reason} ({entry.kind} {entry.value})"
    return enrollments.cooldown_blocks(session, now, prospect.id, version)


def _wake(session: Session, now: datetime, signal: Signal, prospects: list[Prospect]) -> list[int]:
    """Make wait-for-signal steps waiting for this signal type due now."""
    ids = [p.id for p in prospects]
    if not ids:
        return []
    waiting = session.exec(
        select(Enrollment).where(
            Enrollment.prospect_id.in_(ids),
            Enrollment.state == "active",
            Enrollment.waiting_for == signal.type,
        )
    ).all()
    woken = []
    for enrollment in waiting:
        if not enrollments.claim(session, enrollment):
            continue
        enrollment.waiting_for = ""
        enrollment.next_due_at = now
        session.add(enrollment)
        decisions.record(session, now, "woken", f"{signal.type} signal arrived", enrollment=enrollment,
                         signal_id=signal.id)
        woken.append(enrollment.id)
    return woken
