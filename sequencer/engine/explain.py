"""``why was this step not sent?``: a prospect's enrollments with every decision, in order."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from channels.tasks import Task
from sequencer.core.models import Bounce, Decision, Enrollment, Mailbox, Prospect, SequenceVersion, Touch
from sequencer.sequences.schedule import zone


@dataclass
class StepLine:
    index: int
    step_id: str
    kind: str
    status: str  # sent / queued / blocked / ... / done / canceled / current / not reached
    detail: str
    at: datetime | None = None  # when it was sent, queued or done, or (the current step) when it is due
    # the touch's last bounce (sequencer.inbound.bounce_log), in its own fields: reason of the taxonomy and code
    bounce_type: str = ""
    bounce_reason: str = ""
    status_code: str = ""


@dataclass
class EnrollmentStory:
    enrollment: Enrollment
    version: SequenceVersion
    steps: list[StepLine] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)


@dataclass
class Explanation:
    prospect: Prospect
    stories: list[EnrollmentStory]
    other: list[Decision]  # decisions not tied to an enrollment (e.g. not enrolled: filters)


def explain(session: Session, email: str) -> Explanation | None:
    prospect = session.exec(select(Prospect).where(Prospect.email == email.strip().lower())).first()
    if prospect is None:
        return None
    stories = []
    for enrollment in session.exec(
        select(Enrollment).where(Enrollment.prospect_id == prospect.id).order_by(Enrollment.id)
    ):
        version = session.get(SequenceVersion, enrollment.sequence_version_id)
        touches = {t.step_index: t for t in session.exec(select(Touch).where(Touch.enrollment_id == enrollment.id))}
        story = EnrollmentStory(enrollment, version)
        story.decisions = list(
            session.exec(select(Decision).where(Decision.enrollment_id == enrollment.id).order_by(Decision.id))
        )
        touch_ids = [t.id for t in touches.values() if t.id is not None]
        bounces = _last_bounces(session, touch_ids)
        tasks = _tasks(session, touch_ids)
        for step in version.definition["steps"]:
            touch = touches.get(step["index"])
            line = _step_line(step, touch, tasks.get(touch.id) if touch else None, enrollment, story.decisions)
            bounce = bounces.get(touches[step["index"]].id) if step["index"] in touches else None
            if bounce is not None:
                line.bounce_type, line.bounce_reason = bounce.bounce_type, bounce.bounce_reason
                line.status_code = bounce.status_code
            story.steps.append(line)
        stories.append(story)
    other = list(
        session.exec(
            select(Decision)
            .where(Decision.prospect_id == prospect.id, Decision.enrollment_id.is_(None))
            .order_by(Decision.id)
        )
    )
    return Explanation(prospect, stories, other)


def _last_bounces(session: Session, touch_ids: list[int]) -> dict[int, Bounce]:
    """The latest bounce row of each touch (a DSN after a refusal at send time replaces it)."""
    if not touch_ids:
        return {}
    rows = session.exec(select(Bounce).where(Bounce.touch_id.in_(touch_ids)).order_by(Bounce.id))
    return {row.touch_id: row for row in rows if row.touch_id is not None}


def _tasks(session: Session, touch_ids: list[int]) -> dict[int, Task]:
    """The task that works each touch of a person's step (call, LinkedIn, manual email)."""
    if not touch_ids:
        return {}
    return {task.touch_id: task for task in session.exec(select(Task).where(Task.touch_id.in_(touch_ids)))}


TASK_STATUS = {"open": "queued", "done": "done", "canceled": "canceled"}


def _step_line(step: dict, touch: Touch | None, task: Task | None, enrollment: Enrollment,
               decisions: list[Decision]) -> StepLine:
    index = step["index"]
    if task is not None:  # a person's step: the task's own title and state, not the thread's subject
        outcome = f" ({task.outcome})" if task.state == "done" and task.outcome else ""
        return StepLine(index, step["id"], step["kind"], TASK_STATUS.get(task.state, task.state),
                        f"task #{task.id}: {task.title}{outcome}", task.completed_at or touch.sent_at)
    if touch is not None:
        detail = touch.reason or touch.subject or ""
        if touch.state == "sent" and touch.reason:  # why it went as it did (a new thread after an unknown)
            detail = f"{touch.subject} ({touch.reason})"
        at = touch.sent_at if touch.state in ("sent", "queued") else None
        return StepLine(index, step["id"], step["kind"], touch.state, detail, at)
    if index < enrollment.current_step:
        return StepLine(index, step["id"], step["kind"], "done", "")
    if index == enrollment.current_step and enrollment.state in ("active", "paused"):
        last = next((d for d in reversed(decisions) if d.step_index == index), None)
        detail = f"{last.kind}: {last.reason}" if last else ""
        if enrollment.waiting_for == "task":
            detail = "waiting for the SDR to complete the task"
        elif enrollment.state == "paused":
            detail = f"paused: {enrollment.reason}"
        elif enrollment.next_due_at:
            detail = "due" + (f" ({detail})" if detail else "")
            return StepLine(index, step["id"], step["kind"], "current", detail, enrollment.next_due_at)
        return StepLine(index, step["id"], step["kind"], "current", detail)
    return StepLine(index, step["id"], step["kind"], "not reached", "")


def zone_note(prospect: Prospect) -> str:
    """Why the prospect's sending windows are in the zone they are, when it was not given."""
    if prospect.timezone_source == "none":
        return ("no time zone known (none given, and none can be inferred from the country and region): "
                "sending windows are in UTC; set one with prospects import")
    if prospect.timezone_source == "inferred":
        where = ", ".join(part for part in (prospect.region, prospect.country) if part)
        return f"time zone {prospect.timezone} inferred from {where}"
    return ""


def local(moment: datetime | None, tz: str, named: bool = True) -> str:
    """A UTC time shown in ``tz`` (the prospect's or the viewer's zone); ``named=False`` leaves
    the zone's abbreviation out, for rows under a header that names the zone once."""
    if moment is None:
        return "-"
    return moment.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M %Z" if named else "%Y-%m-%d %H:%M")


def step_label(step_index: int | None, steps: int) -> str:
    """"step N" for a decision about one of the sequence's ``steps``; "" for the enrollment as a
    whole (its end is recorded one past the last step)."""
    if step_index is None or step_index >= steps:
        return ""
    return f"step {step_index + 1}"


def as_data(story: Explanation) -> dict[str, Any]:
    """The explanation as plain JSON data (``GET /prospects/{email}/explain``): the same facts the
    CLI prints, times in UTC ISO 8601 (a client shows them in its viewer's zone)."""
    prospect = story.prospect
    return {
        "prospect": {"id": prospect.id, "email": prospect.email, "first_name": prospect.first_name,
                     "last_name": prospect.last_name, "title": prospect.title, "timezone": prospect.timezone,
                     "zone_note": zone_note(prospect)},
        "decisions": [_decision(d) for d in story.other],
        "enrollments": [{
            "id": item.enrollment.id, "sequence": item.version.name, "version": item.version.version,
            "state": item.enrollment.state, "reason": item.enrollment.reason, "rule": item.enrollment.rule,
            "current_step": item.enrollment.current_step, "next_due_at": _iso(item.enrollment.next_due_at),
            "steps": [{"index": line.index, "step_id": line.step_id, "kind": line.kind, "status": line.status,
                       "detail": line.detail, "at": _iso(line.at), "bounce_type": line.bounce_type,
                       "bounce_reason": line.bounce_reason, "status_code": line.status_code} for line in item.steps],
            "decisions": [_decision(d) for d in item.decisions],
        } for item in story.stories],
    }


def _decision(decision: Decision) -> dict[str, Any]:
    return {"at": _iso(decision.at), "kind": decision.kind, "reason": decision.reason, "rule": decision.rule,
            "step_index": decision.step_index, "signal_id": decision.signal_id, "touch_id": decision.touch_id}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def last_touch_id(session: Session) -> int:
    """The newest touch's id (0 for none): ``touch_lines`` after it tells what a tick did."""
    return session.exec(select(func.max(Touch.id))).one() or 0


def touch_lines(session: Session, after_id: int, since: datetime) -> list[str]:
    """One line per touch made after ``after_id`` or sent since ``since`` (a retried one): who,
    what, from which mailbox or for which SDR, and why when it did not go. For ``sequencer run``."""
    query = (select(Touch, Prospect, Enrollment, Mailbox, Task)
             .join(Prospect, Prospect.id == Touch.prospect_id)
             .join(Enrollment, Enrollment.id == Touch.enrollment_id)
             .join(Mailbox, Mailbox.id == Touch.mailbox_id, isouter=True)
             .join(Task, Task.touch_id == Touch.id, isouter=True)
             .where((Touch.id > after_id) | (Touch.sent_at >= since)).order_by(Touch.id))
    return [_touch_line(*row) for row in session.exec(query)]


def _touch_line(touch: Touch, prospect: Prospect, enrollment: Enrollment, mailbox: Mailbox | None,
                task: Task | None) -> str:
    name = " ".join(part for part in (prospect.first_name, prospect.last_name) if part)
    who = f"{name} <{prospect.email}>" if name else prospect.email
    where = f"({enrollment.sequence_name}, step {touch.step_index + 1} {touch.step_id})"
    what = touch.channel.replace("_", " ")
    if task is not None:
        return f"{touch.state} {what} task #{task.id} for {task.owner or 'unassigned'}: {task.title} {where}"
    sender = f" from {mailbox.address}" if mailbox is not None else ""
    subject = f" {touch.subject!r}" if touch.subject else ""
    line = f"{touch.state} {what}{subject} to {who}{sender} {where}"
    return f"{line}: {touch.reason}" if touch.reason and touch.state != "sent" else line
