"""Task channels: calls, LinkedIn steps and manual emails go to the owning SDR's queue.

This module owns the ``Task`` table (on the shared ``SQLModel.metadata``, built by the
one Alembic history in ``sequencer/core/migrations``): the queue is this channel's own
storage. ``channels`` imports nothing from ``sequencer``, so the touch a task is queued
for is taken by the ids it carries (``TouchIds``); the engine passes its ``Touch``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy import Column, Text
from sqlmodel import Field, Session, SQLModel, select

from suppression.columns import utc_column


class Task(SQLModel, table=True):
    """Work for a human: a call, a LinkedIn step or a manual email, in the owner's queue."""

    id: int | None = Field(default=None, primary_key=True)
    # The step this task works; none for a reply to answer (it follows up an email already sent).
    touch_id: int | None = Field(default=None, foreign_key="touch.id", unique=True)
    enrollment_id: int = Field(foreign_key="enrollment.id", index=True)
    prospect_id: int = Field(foreign_key="prospect.id", index=True)
    owner: str = Field(default="", index=True)
    kind: str  # call | linkedin | manual_email | task | reply
    title: str = ""
    body: str = Field(default="", sa_column=Column(Text, nullable=False))
    state: str = "open"  # open | done | canceled
    outcome: str = ""
    note: str = ""
    due_at: datetime | None = utc_column(index=True)
    completed_at: datetime | None = utc_column()


class TouchIds(Protocol):
    """What ``queue`` reads of the touch a task is for (the engine's ``Touch``)."""

    id: int | None
    enrollment_id: int
    prospect_id: int


# Disposition codes an SDR may close a task with.
OUTCOMES = {
    "connected": "spoke with the prospect",
    "voicemail": "left a voicemail",
    "no_answer": "no answer",
    "wrong_number": "wrong number",
    "gatekeeper": "reached a gatekeeper",
    "not_interested": "prospect not interested",
    "meeting_booked": "meeting booked",
    "done": "done",
    "skipped": "skipped by the SDR",
}
TASK_CHANNELS = ("call", "linkedin", "manual_email", "task")


class TaskError(ValueError):
    """A task command that cannot be carried out; the message says why."""


def queue(
    session: Session, touch: TouchIds, owner: str, kind: str, title: str, body: str,
    due_at: datetime,
) -> Task:
    """Put one task in ``owner``'s queue for ``touch``; does not commit."""
    task = Task(
        touch_id=touch.id, enrollment_id=touch.enrollment_id, prospect_id=touch.prospect_id,
        owner=owner, kind=kind, title=title, body=body, due_at=due_at,
    )
    session.add(task)
    session.flush()
    return task


def open_tasks(session: Session, owner: str = "", limit: int = 100) -> list[Task]:
    query = select(Task).where(Task.state == "open")
    if owner:
        query = query.where(Task.owner == owner)
    return list(session.exec(query.order_by(Task.due_at, Task.id).limit(limit)))


def close(session: Session, now: datetime, task_id: int, outcome: str, note: str = "") -> Task:
    """Mark a task done with a disposition code; raise ``TaskError`` for unknown ones."""
    if outcome not in OUTCOMES:
        raise TaskError(f"unknown outcome {outcome!r} (known: {', '.join(OUTCOMES)})")
    task = session.get(Task, task_id)
    if task is None:
        raise TaskError(f"no task {task_id}")
    if task.state != "open":
        raise TaskError(f"task {task_id} is already {task.state} ({task.outcome})")
    task.state = "done"
    task.outcome = outcome
    task.note = note
    task.completed_at = now
    session.add(task)
    return task
