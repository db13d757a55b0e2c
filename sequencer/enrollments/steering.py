"""An SDR steering enrollments by hand: pause, resume and stop, each a claim like the engine's.

These are the same state changes the engine makes (``lifecycle``), taken by a person, so
each is a compare-and-set on the enrollment: a tick racing with the SDR either goes first
(and the SDR's change applies to what it left) or loses. Every change names who asked and
why in the decision log, so ``explain`` shows it.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from sequencer.core.models import Enrollment, Prospect
from sequencer.enrollments import lifecycle


class SteeringError(ValueError):
    """A pause, resume or stop that cannot be done; the message says why."""


def find(session: Session, target: str, *, state: tuple[str, ...] = lifecycle.ACTIVE_STATES) -> list[Enrollment]:
    """The enrollments ``target`` names: an id (``12``, ``#12``) or a prospect's email (their
    enrollments in ``state``). Raises ``SteeringError`` when it names none."""
    text = target.strip().lstrip("#")
    if text.isdigit():
        enrollment = session.get(Enrollment, int(text))
        if enrollment is None:
            raise SteeringError(f"no enrollment #{text}")
        return [enrollment]
    if "@" not in text:
        raise SteeringError(f"{target!r} is neither an enrollment id nor an email address")
    prospect = session.exec(select(Prospect).where(Prospect.email == text.lower())).first()
    if prospect is None:
        raise SteeringError(f"no prospect {text}")
    found = list(session.exec(select(Enrollment).where(Enrollment.prospect_id == prospect.id,
                                                       Enrollment.state.in_(state)).order_by(Enrollment.id)))
    if not found:
        raise SteeringError(f"{text} has no enrollment that is {' or '.join(state)}")
    return found


def pause(session: Session, now: datetime, enrollment: Enrollment, reason: str, by: str = "") -> None:
    """Pause until someone resumes it; the caller commits."""
    if enrollment.state != "active":
        raise SteeringError(f"enrollment #{enrollment.id} is {enrollment.state}, not active")
    _claim(session, enrollment)
    lifecycle.pause(session, now, enrollment, f"paused by hand: {reason or 'no reason given'}", by=by or "cli")


def resume(session: Session, now: datetime, enrollment: Enrollment, reason: str, by: str = "") -> None:
    """Make a paused enrollment active again: its current step is tried afresh in the window.

    An enrollment paused for "needs attention" (a missing variable, an unsafe header) is
    resumed like any other once the data is fixed: its blocked touch is rendered again at
    the next tick, and blocks again (pausing it again, with the reason) if it still cannot go.
    """
    if enrollment.state != "paused":
        raise SteeringError(f"enrollment #{enrollment.id} is {enrollment.state}, not paused")
    _claim(session, enrollment)
    prospect = session.get(Prospect, enrollment.prospect_id)
    lifecycle.resume(session, now, enrollment, f"resumed by {by or 'hand'}: {reason or 'no reason given'}", prospect)


def stop(session: Session, now: datetime, enrollment: Enrollment, reason: str, by: str = "") -> None:
    """Stop for good; the caller commits."""
    if enrollment.state not in lifecycle.ACTIVE_STATES:
        raise SteeringError(f"enrollment #{enrollment.id} is already {enrollment.state}")
    _claim(session, enrollment)
    lifecycle.stop(session, now, enrollment, f"stopped by hand: {reason or 'no reason given'}", rule="manual",
                   by=by or "cli")


def _claim(session: Session, enrollment: Enrollment) -> None:
    if not lifecycle.claim(session, enrollment):
        session.rollback()
        raise SteeringError(f"enrollment #{enrollment.id} changed while you asked (the engine moved it): try again")
