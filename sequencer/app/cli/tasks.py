"""``sequencer tasks``: the SDR's queue of calls, LinkedIn steps and manual emails."""

from __future__ import annotations

import typer
from rich.table import Table

from channels.tasks import OUTCOMES, Task, TaskError, open_tasks
from sequencer.app.cli.common import console, fail, open_session, settings
from sequencer.core.clock import SystemClock
from sequencer.core.models import Prospect
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
) -> None:
    """Close a task with a disposition; the sequence moves on (or stops on meeting_booked)."""
    from sequencer.rules.actions import rulebook

    config = settings()
    with open_session(config) as session:
        try:
            result = complete_task(session, SystemClock().now(), task_id, outcome, note, rules=rulebook(config))
        except TaskError as exc:
            fail(str(exc))
    console.print(f"task #{task_id} closed ({outcome}); enrollment {result}")
