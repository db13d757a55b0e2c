"""Fixes reach running enrollments when the SDR says so (``sequences load --upgrade running``).

Loading a changed sequence adds a version; enrollments keep the one they started on unless
the SDR asks for this. Each running (active or paused) enrollment on an older version of a
sequence moves to its current version at the step it is on, when the steps line up
(``versions.line_up_problem``) and no send of its current step is in flight; every other
one stays where it is, with the reason. Each move is one claim, committed on its own, so a
tick racing on the same enrollment either goes first (and this one reports it) or after.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from sequencer.core.models import Enrollment, Prospect, SequenceVersion, Touch
from sequencer.enrollments.lifecycle import ACTIVE_STATES, move_to_version
from sequencer.sequences.versions import current_version, line_up_problem

IN_FLIGHT = ("claimed", "outbox", "sending")  # a touch claimed for a send (send_batch) and not yet recorded


@dataclass(frozen=True)
class Upgrade:
    enrollment_id: int
    email: str
    sequence: str
    from_version: int
    to_version: int
    step: int  # 1-based, as the SDR reads it
    reason: str = ""  # why it was not moved; "" when it was

    @property
    def moved(self) -> bool:
        return not self.reason


def upgrade_running(session: Session, now: datetime, names: list[str]) -> list[Upgrade]:
    """Move the running enrollments of the sequences ``names`` to their current versions."""
    results: list[Upgrade] = []
    for name in names:
        target = current_version(session, name)
        if target is None:
            continue
        rows = session.exec(
            select(Enrollment, SequenceVersion, Prospect)
            .join(SequenceVersion, SequenceVersion.id == Enrollment.sequence_version_id)
            .join(Prospect, Prospect.id == Enrollment.prospect_id)
            .where(Enrollment.sequence_name == name, Enrollment.state.in_(ACTIVE_STATES),
                   Enrollment.sequence_version_id != target.id)
            .order_by(Enrollment.id)
        ).all()
        for enrollment, version, prospect in rows:
            reason = _why_not(session, enrollment, version, target)
            if not reason:
                moved = move_to_version(session, now, enrollment, target)
                session.commit()
                reason = "" if moved else "it changed while being moved (a tick stepped it); run the upgrade again"
            results.append(Upgrade(enrollment.id, prospect.email, name, version.version, target.version,
                                   enrollment.current_step + 1, reason))
    return results


def _why_not(session: Session, enrollment: Enrollment, version: SequenceVersion, target: SequenceVersion) -> str:
    problem = line_up_problem(version.definition, target.definition, enrollment.current_step)
    if problem:
        return problem
    in_flight = session.exec(
        select(Touch.id).where(Touch.enrollment_id == enrollment.id, Touch.step_index == enrollment.current_step,
                               Touch.state.in_(IN_FLIGHT))
    ).first()
    if in_flight is not None:
        return "a send of its current step is in flight; run the upgrade again once it is recorded"
    return ""
