"""``sequencer tasks``: the SDR's queue of calls, LinkedIn steps and manual emails."""

from __future__ import annotations

import json
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich.markup import escape
from rich.table import Table
from sqlmodel import select

from channels.tasks import OUTCOMES, Task, TaskError, open_tasks
from sequencer.app.cli.common import console, fail, open_session, settings
from sequencer.core.clock import SystemClock
from sequencer.core.models import Account, Meeting, Prospect, Touch
from sequencer.engine.steps import complete_task

app = typer.Typer(help="Work queued for people: calls, LinkedIn, manual emails.", no_args_is_help=True)


@app.command("list")
def list_(owner: str = typer.Option("", help="Only this SDR's tasks."), limit: int = 100,
          tz: str = typer.Option("", "--tz", help="Show due times in this zone (default: this machine's)."),
          as_json: bool = typer.Option(False, "--json", help="One JSON array, for scripts.")) -> None:
    """Open tasks, oldest first."""
    zone = _zone(tz)
    with open_session() as session:
        items = [_summary(session, task, zone) for task in open_tasks(session, owner, limit)]
    if as_json:
        console.print_json(json.dumps(items))
        return
    table = Table("id", f"due ({_zone_name(zone)})", "owner", "kind", "prospect", "title")
    for item in items:
        table.add_row(str(item["id"]), item["due_local"], item["owner"] or "-", item["kind"], item["prospect"],
                      item["title"])
    console.print(table)


@app.command()
def show(task_id: int, tz: str = typer.Option("", "--tz", help="Show times in this zone (default: this "
                                              "machine's)."),
         as_json: bool = typer.Option(False, "--json", help="As one JSON object.")) -> None:
    """One task: who to reach and how (phone, LinkedIn, account), when it is due, the last touches,
    and its script or draft."""
    zone = _zone(tz)
    with open_session() as session:
        task = session.get(Task, task_id)
        if task is None:
            fail(f"no task {task_id}")
        item = _summary(session, task, zone)
        touches = session.exec(select(Touch).where(Touch.prospect_id == task.prospect_id)
                               .order_by(Touch.created_at.desc(), Touch.id.desc()).limit(5)).all()
        item["last_touches"] = [{"at": _local(t.sent_at or t.created_at, zone), "channel": t.channel,
                                 "step": t.step_id, "state": t.state, "subject": t.subject} for t in touches]
        item["body"] = task.body
    if as_json:
        console.print_json(json.dumps(item))
        return
    lines = [f"[bold]#{item['id']} {escape(item['title'])}[/bold] ({item['kind']}, {item['state']})",
             f"prospect: {item['name']} <{item['prospect']}>" + (f", {item['job_title']}" if item["job_title"] else ""),
             f"account:  {item['account'] or '-'}", f"phone:    {item['phone'] or '-'}",
             f"LinkedIn: {item['linkedin_url'] or '-'}", f"due:      {item['due_local']} ({_zone_name(zone)}; "
             f"{item['prospect_local']} for the prospect)", f"owner:    {item['owner'] or '-'}", "last touches:"]
    lines += [f"  {t['at']}  {t['channel']:<12} {t['state']:<8} {escape(t['subject'] or t['step'])}"
              for t in item["last_touches"]] or ["  none yet"]
    console.print("\n".join(lines), highlight=False)
    console.print(f"\n{escape(item['body'])}", highlight=False)


def _zone(name: str) -> tzinfo:
    """The SDR's zone: ``--tz``, else this machine's local zone."""
    if not name:
        return datetime.now().astimezone().tzinfo
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        fail(f"--tz: unknown time zone {name!r} (an IANA name such as Europe/Berlin)")
        raise


def _zone_name(zone: tzinfo) -> str:
    return getattr(zone, "key", None) or datetime.now(zone).tzname() or "local"


def _local(moment: datetime | None, zone: tzinfo) -> str:
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M}" if moment else "-"


def _summary(session, task: Task, zone: tzinfo) -> dict:
    prospect = session.get(Prospect, task.prospect_id)
    account = session.get(Account, prospect.account_id) if prospect.account_id else None
    name = " ".join(part for part in (prospect.first_name, prospect.last_name) if part) or prospect.email
    try:
        prospect_zone = ZoneInfo(prospect.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        prospect_zone = ZoneInfo("UTC")
    return {"id": task.id, "kind": task.kind, "state": task.state, "outcome": task.outcome, "title": task.title,
            "owner": task.owner, "prospect": prospect.email, "name": name, "job_title": prospect.title,
            "phone": prospect.phone, "linkedin_url": prospect.linkedin_url,
            "account": account.name or account.domain if account else "",
            "due_at": task.due_at.isoformat() if task.due_at else None, "due_local": _local(task.due_at, zone),
            "prospect_local": f"{_local(task.due_at, prospect_zone)} {prospect.timezone or 'UTC'}",
            "enrollment_id": task.enrollment_id}


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
