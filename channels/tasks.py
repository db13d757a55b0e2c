"""Task channels: calls, LinkedIn steps and manual emails go to the owning SDR's queue."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from sequencer.core.models import Task, Touch

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
    session: Session, touch: Touch, owner: str, kind: str, title: str, body: str, due_at: datetime
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
