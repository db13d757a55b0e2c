"""The append-only decision log: every enroll, send, block, deferral, stop and pause."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session

from sequencer.models import Decision, Enrollment

# Written on every step of every enrollment, never read back by the writer: a plain
# INSERT in the caller's transaction costs a tenth of building and flushing an ORM row.
_INSERT = insert(Decision)


def record(
    session: Session,
    now: datetime,
    kind: str,
    reason: str = "",
    *,
    enrollment: Enrollment | None = None,
    prospect_id: int | None = None,
    touch_id: int | None = None,
    step_index: int | None = None,
    signal_id: int | None = None,
    rule: str = "",
    **detail: Any,
) -> None:
    """Write one decision in the caller's transaction (it commits or rolls back with it)."""
    session.connection().execute(_INSERT, {
        "at": now,
        "kind": kind,
        "reason": reason,
        "rule": rule,
        "prospect_id": prospect_id if prospect_id is not None else getattr(enrollment, "prospect_id", None),
        "enrollment_id": getattr(enrollment, "id", None),
        "touch_id": touch_id,
        "step_index": step_index if step_index is not None else getattr(enrollment, "current_step", None),
        "signal_id": signal_id,
        "detail": detail,
    })
