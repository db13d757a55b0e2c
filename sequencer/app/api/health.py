"""``GET /health``: is this deployment able to work, and is it keeping up?

Open on purpose (a load balancer or a monitor asks without a key), so it says nothing a
stranger could use: no URLs, hosts, names or counts of people, only whether the database
and the broker answer, how much work is due and how old the oldest is. 200 when the
database (and the broker, when signals are dispatched to workers) answers, else 503.

Bounded work: each count stops at ``COUNT_CAP`` (a backlog of a million costs what one
of ``COUNT_CAP`` does), and both the due work and the unprocessed signals are read through
their indexes (``ix_enrollment_due``, ``ix_signal_unprocessed``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import redis
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import func
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from sequencer.app.api import NowDep, SessionDep
from sequencer.core.models import Enrollment, Signal

router = APIRouter(tags=["operations"])
COUNT_CAP = 100_000
BROKER_TIMEOUT = 1.0  # seconds; a monitor's probe must not hang on a broker that is gone


@router.get("/health", responses={200: {"description": "Working", "content": {"application/json": {"example": {
    "status": "ok", "database": "ok", "broker": "ok",
    "due": {"enrollments": 12, "oldest_due_seconds": 3.2},
    "signals": {"unprocessed": 0, "oldest_unprocessed_seconds": None}}}}},
    503: {"description": "The database or the broker does not answer"}})
def health(request: Request, session: SessionDep, now: NowDep) -> JSONResponse:
    """Database and broker reachable, pending due work and the age of the oldest."""
    body: dict[str, Any] = {"status": "ok"}
    try:
        due = (Enrollment.state == "active", Enrollment.next_due_at <= now)
        body["due"] = _backlog(session, now, select(Enrollment.id).where(*due),
                               select(func.min(Enrollment.next_due_at)).where(*due),
                               "enrollments", "oldest_due_seconds")
        waiting = Signal.processed_at.is_(None)
        body["signals"] = _backlog(session, now, select(Signal.id).where(waiting),
                                   select(Signal.received_at).where(waiting).order_by(Signal.id).limit(1),
                                   "unprocessed", "oldest_unprocessed_seconds")
        body["database"] = "ok"
    except SQLAlchemyError as exc:
        body.update(status="failing", database=f"unreachable: {type(getattr(exc, 'orig', None) or exc).__name__}")
    body["broker"] = _broker(request.app.state.settings)
    if body["broker"] not in ("ok", "not used"):
        body["status"] = "failing"
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)


def _backlog(session: Session, now: datetime, rows, oldest, count_name: str, age_name: str) -> dict[str, Any]:
    """How many ``rows`` there are (counted up to ``COUNT_CAP``) and the age of ``oldest``, in seconds."""
    count = session.exec(select(func.count()).select_from(rows.limit(COUNT_CAP).subquery())).one()
    moment = session.exec(oldest).first() if count else None
    return {count_name: count, age_name: round((now - moment).total_seconds(), 3) if moment else None}


def _broker(settings) -> str:
    """'ok', 'not used' (no workers to reach: signals are not dispatched) or why it does not answer."""
    from sequencer.app.api.signals import dispatch_mode

    if dispatch_mode(settings) != "celery":
        return "not used"
    try:
        redis.Redis.from_url(settings.broker_url, socket_connect_timeout=BROKER_TIMEOUT,
                             socket_timeout=BROKER_TIMEOUT).ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        return f"unreachable: {type(exc).__name__}"
    return "ok"
