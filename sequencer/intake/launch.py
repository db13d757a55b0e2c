"""A manual launch: an SDR enrolls prospects they choose, under the same checks as a signal.

The trigger's filters on the prospect and the account apply (its ``signal.*`` filters
cannot: no signal is involved, and they are named as skipped), then suppression, the
cool-down and one active sequence per prospect. ``force`` with a reason lets an SDR
override the filters, the cool-down and the overlap rule, and the reason is recorded
with the enrollment; it never overrides suppression (an unsubscribe or a hard bounce is
not the SDR's to waive) nor a second running enrollment in the same sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from sequencer.core import decisions
from sequencer.core.models import Account, Enrollment, Prospect, SequenceVersion
from sequencer.enrollments import lifecycle
from sequencer.sequences import triggers
from sequencer.sequences.context import values_of
from suppression.store import find_suppression


@dataclass
class Launch:
    email: str
    enrollment_id: int | None = None
    refused: str = ""  # why not, when not enrolled
    forced: str = ""  # the checks ``force`` overrode


def enroll_by_hand(session: Session, now: datetime, version: SequenceVersion, prospect: Prospect, *,
                   force: bool = False, reason: str = "", by: str = "") -> Launch:
    """Enroll ``prospect`` in ``version`` unless a check refuses; the caller commits."""
    if force and not reason.strip():
        raise ValueError("--force needs --reason: the override is recorded with the enrollment")
    result = Launch(prospect.email)
    account = session.get(Account, prospect.account_id) if prospect.account_id else None
    entry = find_suppression(session, now, prospect.email, prospect.account_id)
    if entry is not None:
        result.refused = f"suppressed: {entry.reason} ({entry.kind} {entry.value}); --force does not override this"
        return result
    if session.exec(select(Enrollment.id).where(Enrollment.prospect_id == prospect.id,
                                                Enrollment.sequence_name == version.name,
                                                Enrollment.state.in_(lifecycle.ACTIVE_STATES))).first():
        result.refused = f"already in {version.name}"
        return result
    filters = {name: spec for name, spec in version.definition["trigger"].get("filters", {}).items()
               if not name.startswith("signal.")}
    failed = triggers.failed_filters(filters, values_of(prospect, account))
    blocks = [("filters not met: " + "; ".join(failed)) if failed else "",
              lifecycle.enroll_blocks(session, now, prospect.id, version)]
    blocks = [block for block in blocks if block]
    if blocks and not force:
        result.refused = "; ".join(blocks) + " (--force --reason ... overrides)"
        return result
    row = lifecycle.create(session, now, prospect, version, None)
    result.enrollment_id = row.id
    if blocks:
        result.forced = "; ".join(blocks)
    decisions.record(session, now, "launched", f"enrolled by {by or 'hand'}" + (
        f", forced past: {result.forced}; reason: {reason.strip()}" if blocks else ""),
        enrollment=row, sequence=version.name, forced=result.forced, why=reason.strip(), by=by)
    return result
