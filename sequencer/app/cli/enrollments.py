"""``sequencer enroll`` and ``sequencer enrollments``: launch prospects by hand, list, pause, resume, stop."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import typer
from rich.table import Table
from sqlmodel import select

from sequencer.app.cli.common import console, fail, open_session, settings
from sequencer.core.clock import SystemClock
from sequencer.core.models import Enrollment, Prospect, SequenceVersion
from sequencer.enrollments import steering
from sequencer.intake.launch import enroll_by_hand
from sequencer.sequences.versions import current_version

app = typer.Typer(help="Enrollments: list them, pause, resume or stop one (by id or the prospect's email).",
                  no_args_is_help=True)
MAX_FILE_ADDRESSES = 10_000  # a launch list is a list of people, not a database dump


def enroll_command(
    sequence: str = typer.Argument(..., help="The sequence (as loaded: sequencer sequences list)."),
    email: list[str] = typer.Option([], "--email", help="A prospect's address (repeatable)."),
    file: Path | None = typer.Option(None, "--file", exists=True, dir_okay=False,
                                     help="Addresses, one a line, or a CSV with an email column."),
    force: bool = typer.Option(False, "--force", help="Past the filters, the cool-down and the one-sequence rule "
                               "(never past suppression); needs --reason."),
    reason: str = typer.Option("", "--reason", help="Why (recorded with each enrollment)."),
    by: str = typer.Option("", "--by", help="Who launched (default: $USER)."),
) -> None:
    """Launch prospects into a sequence by hand: the trigger's filters apply, or --force with a reason."""
    import os

    addresses = [*email, *(_addresses(file) if file else [])]
    if not addresses:
        fail("give --email ADDRESS (repeatable) or --file FILE")
    if force and not reason.strip():
        fail("--force needs --reason: the override is recorded with the enrollment")
    now = SystemClock().now()
    started = refused = 0
    with open_session(settings()) as session:
        version = current_version(session, sequence)
        if version is None:
            names = ", ".join(v for v in session.exec(select(SequenceVersion.name).distinct()).all()) or "none loaded"
            fail(f"no sequence {sequence!r} (known: {names})")
        for address in dict.fromkeys(a.strip().lower() for a in addresses if a.strip()):
            prospect = session.exec(select(Prospect).where(Prospect.email == address)).first()
            if prospect is None:
                console.print(f"[red]refused[/red] {address}: not a prospect (sequencer prospects import first)",
                              highlight=False)
                refused += 1
                continue
            launch = enroll_by_hand(session, now, version, prospect, force=force, reason=reason,
                                    by=by or os.environ.get("USER", ""))
            session.commit()
            if launch.enrollment_id is None:
                console.print(f"[red]refused[/red] {address}: {launch.refused}", highlight=False)
                refused += 1
            else:
                forced = f" (forced past: {launch.forced})" if launch.forced else ""
                console.print(f"enrolled {address} in {version.name} v{version.version}: enrollment "
                              f"#{launch.enrollment_id}{forced}", highlight=False)
                started += 1
    console.print(f"{started} enrolled, {refused} refused", highlight=False)
    if refused and not started:
        raise typer.Exit(1)


def _addresses(path: Path) -> list[str]:
    """The addresses of a launch list: a column named email, else the first column; bounded."""
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        rows = list(csv.reader(handle))[: MAX_FILE_ADDRESSES + 1]
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    column = header.index("email") if "email" in header else 0
    body = rows[1:] if "email" in header or "@" not in (rows[0][0] if rows[0] else "") else rows
    if len(body) > MAX_FILE_ADDRESSES:
        fail(f"{path}: more than {MAX_FILE_ADDRESSES} addresses; split the list")
    return [row[column] for row in body if len(row) > column and "@" in row[column]]


@app.command("list")
def list_(
    state: str = typer.Option("", "--state", help="active, paused, finished or stopped."),
    sequence: str = typer.Option("", "--sequence", help="Only this sequence."),
    as_json: bool = typer.Option(False, "--json", help="One JSON array, for scripts."),
    limit: int = typer.Option(200, help="At most this many, newest first."),
) -> None:
    """Enrollments, newest first: who, which sequence, state and why, the step it is at, when it is due."""
    with open_session() as session:
        query = select(Enrollment, Prospect.email).join(Prospect, Prospect.id == Enrollment.prospect_id)
        if state:
            query = query.where(Enrollment.state == state)
        if sequence:
            query = query.where(Enrollment.sequence_name == sequence)
        rows = session.exec(query.order_by(Enrollment.id.desc()).limit(limit)).all()
        items = [_item(session, enrollment, email) for enrollment, email in rows]
    if as_json:
        console.print_json(json.dumps(items))
        return
    table = Table("id", "prospect", "sequence", "state", "step", "due (UTC)", "why")
    for item in items:
        table.add_row(str(item["id"]), item["prospect"], item["sequence"], item["state"], item["step"],
                      (item["next_due_at"] or "-")[:16].replace("T", " "), item["reason"])
    console.print(table)


def _item(session, enrollment: Enrollment, email: str) -> dict:
    version = session.get(SequenceVersion, enrollment.sequence_version_id)
    steps = version.definition["steps"] if version else []
    at = enrollment.current_step
    step = (f"{at + 1}/{len(steps)} {steps[at].get('id') or steps[at]['kind']}" if at < len(steps)
            else f"done ({len(steps)})")
    if enrollment.waiting_for:
        step += f" (waiting for {enrollment.waiting_for})"
    return {"id": enrollment.id, "prospect": email, "sequence": enrollment.sequence_name,
            "version": version.version if version else None, "state": enrollment.state, "step": step,
            "reason": enrollment.reason, "rule": enrollment.rule,
            "next_due_at": enrollment.next_due_at.isoformat() if enrollment.next_due_at else None,
            "enrolled_at": enrollment.enrolled_at.isoformat() if enrollment.enrolled_at else None}


def _steer(move: str, target: str, reason: str, states: tuple[str, ...]) -> None:
    now = SystemClock().now()
    with open_session() as session:
        try:
            found = steering.find(session, target, state=states)
            for enrollment in found:
                getattr(steering, move)(session, now, enrollment, reason)
                session.commit()
                console.print(f"enrollment #{enrollment.id} ({enrollment.sequence_name}): {enrollment.state}",
                              highlight=False)
        except steering.SteeringError as exc:
            fail(str(exc))


@app.command()
def pause(target: str = typer.Argument(..., help="An enrollment id or a prospect's email (all their active ones)."),
          reason: str = typer.Option("", "--reason")) -> None:
    """Pause until resumed."""
    _steer("pause", target, reason, ("active",))


@app.command()
def resume(target: str = typer.Argument(..., help="An enrollment id or a prospect's email (all their paused ones)."),
           reason: str = typer.Option("", "--reason")) -> None:
    """Resume a paused enrollment (also one paused for "needs attention", once the data is fixed)."""
    _steer("resume", target, reason, ("paused",))


@app.command()
def stop(target: str = typer.Argument(..., help="An enrollment id or a prospect's email (all their running ones)."),
         reason: str = typer.Option("", "--reason")) -> None:
    """Stop for good."""
    _steer("stop", target, reason, ("active", "paused"))
