"""The append-only decision log: every enroll, send, block, deferral, stop and pause."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session

from sequencer.core.models import Decision, Enrollment

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
    """Write one decision in the caller's transaction (it commits or rolls back with it).

    Inside ``batched`` the row is held and written with the others at the end.
    """
    row = {
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
    }
    held = session.info.get(_HELD)
    if held is not None:
        held.append(row)
    else:
        session.connection().execute(_INSERT, row)


_HELD = "sequencer.core.decisions.held"


@contextmanager
def batched(session: Session) -> Iterator[None]:
    """Hold the decisions recorded inside and write them in one multi-row INSERT at the end.

    For loops that record thousands (a batch of signals, of sends). Code inside that
    reads decisions back calls ``flush`` first. If the block raises, the held rows are
    dropped with it: the caller rolls its transaction back anyway.
    """
    if _HELD in session.info:  # already inside a batch: the outer one writes
        yield
        return
    session.info[_HELD] = []
    try:
        yield
        flush(session)
    finally:
        session.info.pop(_HELD, None)


def flush(session: Session) -> None:
    """Write the decisions held by ``batched`` now (so a query can see them)."""
    held = session.info.get(_HELD)
    if held:
        session.connection().execute(_INSERT, held)
        held.clear()
