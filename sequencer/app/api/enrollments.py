"""``GET /enrollments`` (filtered, paged) and ``POST /enrollments/{id}/pause|resume|stop``.

Mounted with ``mount_writes`` (an API key with the ``admin`` scope), the listing included:
it names people. The moves go through ``enrollments.steering``, as ``sequencer enrollments
pause|resume|stop`` do (a claim, then the lifecycle's own pause / resume / stop, the only
writer of enrollment state): 404 for an
unknown id, 409 when the state does not allow the move or the enrollment changed while
it was made (nothing is written then); the key's name is recorded as who asked.

Paging is by id (keyset): ``after_id`` is the last id of the previous page, so a page
costs the same however deep it is and rows added meanwhile are neither skipped nor
repeated. ``limit`` is at most ``MAX_LIMIT``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import select

from sequencer.app.api import NowDep, SessionDep
from sequencer.app.api.auth import require_key
from sequencer.core.models import ApiKey, Enrollment, Prospect
from sequencer.enrollments import steering

router = APIRouter(tags=["enrollments"])
MAX_LIMIT = 500
MAX_REASON = 500
States = Literal["active", "paused", "finished", "stopped"]


def as_dict(enrollment: Enrollment, email: str) -> dict:
    return {
        "id": enrollment.id, "prospect_id": enrollment.prospect_id, "email": email,
        "sequence": enrollment.sequence_name, "sequence_version_id": enrollment.sequence_version_id,
        "state": enrollment.state, "reason": enrollment.reason, "rule": enrollment.rule,
        "current_step": enrollment.current_step, "waiting_for": enrollment.waiting_for,
        "next_due_at": _iso(enrollment.next_due_at), "paused_until": _iso(enrollment.paused_until),
        "enrolled_at": _iso(enrollment.enrolled_at), "finished_at": _iso(enrollment.finished_at),
        "signal_id": enrollment.signal_id,
    }


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None


@router.get("/enrollments")
def list_enrollments(
    session: SessionDep,
    state: Annotated[States | None, Query(description="only enrollments in this state")] = None,
    sequence: Annotated[str | None, Query(max_length=200, description="only this sequence (by name)")] = None,
    email: Annotated[str | None, Query(max_length=320, description="only this prospect's")] = None,
    after_id: Annotated[int, Query(ge=0, description="the last id of the previous page")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> dict:
    """Enrollments in id order, a page at a time; ``next_after_id`` asks for the next page (null: the last)."""
    query = (select(Enrollment, Prospect.email).join(Prospect, Prospect.id == Enrollment.prospect_id)
             .where(Enrollment.id > after_id))
    if state:
        query = query.where(Enrollment.state == state)
    if sequence:
        query = query.where(Enrollment.sequence_name == sequence)
    if email:
        query = query.where(Prospect.email == email.strip().lower())
    rows = session.exec(query.order_by(Enrollment.id).limit(limit + 1)).all()
    page = rows[:limit]
    return {"enrollments": [as_dict(enrollment, address) for enrollment, address in page],
            "next_after_id": page[-1][0].id if len(rows) > limit else None}


class MoveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "asked to wait until Q2"}]})

    reason: str = Field(default="", max_length=MAX_REASON)


def _move(move: str):
    act = getattr(steering, move)

    def route(enrollment_id: int, session: SessionDep, now: NowDep,
              key: Annotated[ApiKey, Depends(require_key("admin"))], body: MoveRequest | None = None) -> dict:
        enrollment = session.get(Enrollment, enrollment_id)
        if enrollment is None:
            raise HTTPException(404, f"no enrollment {enrollment_id}")
        try:
            act(session, now, enrollment, " ".join((body.reason if body else "").split()), by=f"api:{key.name}")
        except steering.SteeringError as exc:
            session.rollback()
            raise HTTPException(409, str(exc)) from exc
        session.commit()
        prospect = session.get(Prospect, enrollment.prospect_id)
        return as_dict(enrollment, prospect.email)

    route.__name__ = f"{move}_enrollment"
    route.__doc__ = f"{move.capitalize()} one enrollment (404 unknown, 409 when its state does not allow it)."
    return route


for _name in ("pause", "resume", "stop"):
    router.post(f"/enrollments/{{enrollment_id}}/{_name}")(_move(_name))
