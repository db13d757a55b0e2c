"""``sequencer tasks``: the SDR's queue of calls, LinkedIn steps and manual emails."""

from __future__ import annotations

import typer
from rich.table import Table
from sqlmodel import select

from channels.tasks import OUTCOMES, Task, TaskError, open_tasks
from sequencer.app.cli.common import console, fail, open_session, settings
from sequencer.core.clock import SystemClock
from sequencer.core.models import Meeting, Prospect
from sequencer.engine.steps import complete_task

app = typer.Typer(help="Work queued for people: calls, LinkedIn, manual emails.", no_args_is_help=True)


@app.command("list")
def list_(owner: str = typer.Option("", help="Only this SDR's tasks."), limit: int = 100) -> None:
    """Open tasks, oldest first."""
    with open_session() as session:
        table = Table("id", "due (UTC)", "owner", "kind", "prospect", "title")
        for task in open_tasks(session, owner, limit):
            prospect = session.get(Prospect, task.prospect_id)
            table.add_row(str(task.id), f"{task.due_at:%Y-%m-%d %H:%M}", task.owner or "-", task.kind,
                          prospect.email, task.title)
    console.print(table)


@app.command()
def show(task_id: int) -> None:
    """One task with its script or draft."""
    with open_session() as session:
        task = session.get(Task, task_id)
        if task is None:
            fail(f"no task {task_id}")
        console.print(f"[bold]#{task.id} {task.title}[/bold] ({task.kind}, {task.state})\n\n{task.body}")


@app.command()
def done(
    task_id: int,
    outcome: str = typer.Option(..., help="Disposition: " + ", ".join(OUTCOMES)),
    note: str = typer.Option("", help="Free text for the record."),
    meeting_start: str = typer.Option("", "--meeting-start", help="With meeting_booked: book the meeting at this "
                                      "ISO 8601 time (with a zone)."),
    ae: str = typer.Option("", "--ae", help="The meeting's AE (default: meeting_default_ae)."),
    duration: int | None = typer.Option(None, "--duration", help="The meeting's minutes (default: "
                                        "meeting_default_duration)."),
    location: str = typer.Option("", "--location", help="The meeting's video link or place."),
) -> None:
    """Close a task with a disposition; the sequence moves on (or stops on meeting_booked, which books
    the meeting when --meeting-start is given)."""
    from sequencer.app.cli.meetings import deliver_invites, parse_start
    from sequencer.meetings.booking import BookingIn, MeetingError
    from sequencer.rules.actions import rulebook

    config = settings()
    meeting = None
    if meeting_start:
        meeting = BookingIn(prospect_email="", ae=ae or config.meeting_default_ae, start=parse_start(
            meeting_start, "--meeting-start"), duration_minutes=config.meeting_default_duration if duration is None
            else duration, location=location, source="task")
    elif ae or duration is not None or location:
        fail("--ae, --duration and --location describe a meeting: give --meeting-start too")
    with open_session(config) as session:
        try:
            result = complete_task(session, SystemClock().now(), task_id, outcome, note, rules=rulebook(config),
                                   meeting=meeting, settings=config)
        except (TaskError, MeetingError) as exc:
            fail(str(exc))
        console.print(f"task #{task_id} closed ({outcome}); enrollment {result}")
        if meeting is not None:
            task = session.get(Task, task_id)
            booked = session.exec(select(Meeting).where(Meeting.enrollment_id == task.enrollment_id,
                                                        Meeting.source == "task").order_by(Meeting.id.desc())).first()
            console.print(f"meeting #{booked.id} booked for {booked.start_at:%Y-%m-%d %H:%M} UTC with {booked.ae}",
                          highlight=False)
            deliver_invites(session, config, booked, "REQUEST")
