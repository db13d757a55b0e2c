"""``sequencer sequences preview``: a prospect's calendar in a sequence, and each email as it would leave."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer
from rich.markup import escape
from sqlmodel import select

from sequencer.app.cli.common import console, fail, open_session, settings
from sequencer.core.clock import SystemClock
from sequencer.core.models import Prospect, SequenceVersion
from sequencer.engine.preview import preview
from sequencer.sequences import schedule
from sequencer.sequences.versions import current_version


def preview_command(
    sequence: str = typer.Argument(..., help="A loaded sequence (sequencer sequences load)."),
    prospect: str = typer.Option(..., "--prospect", help="The prospect's email (sequencer prospects import)."),
    start: str = typer.Option("", "--start", help="Enrolled at this ISO 8601 time (default: now)."),
    as_json: bool = typer.Option(False, "--json", help="As one JSON object."),
) -> None:
    """When each step would happen for PROSPECT (their zone, window, holidays, waits, today's cap room)
    and each email rendered with its headers, as the engine would send it; nothing is stored."""
    config = settings()
    at = SystemClock().now()
    if start:
        try:
            at = datetime.fromisoformat(start)
        except ValueError:
            fail(f"--start: {start!r} is not an ISO 8601 time (2026-12-07T09:00:00-05:00)")
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    with open_session(config) as session:
        version = current_version(session, sequence)
        if version is None:
            names = ", ".join(session.exec(select(SequenceVersion.name).distinct()).all()) or "none loaded"
            fail(f"no sequence {sequence!r} (known: {names})")
        person = session.exec(select(Prospect).where(Prospect.email == prospect.strip().lower())).first()
        if person is None:
            fail(f"no prospect {prospect} (sequencer prospects import first)")
        try:
            result = preview(session, config, version, person, at)
        except ValueError as exc:  # no secret_key to sign the unsubscribe link, no open window in 400 days
            fail(f"cannot preview: {exc}")
        session.rollback()
    zone = schedule.zone(result.timezone)
    if as_json:
        data = {**{k: v for k, v in vars(result).items() if k != "steps"},
                "steps": [{**vars(s), "at": s.at.isoformat() if s.at else None,
                           "local": f"{s.at.astimezone(zone):%Y-%m-%d %H:%M}" if s.at else None}
                          for s in result.steps]}
        console.print_json(json.dumps(data))
        return
    console.print(f"[bold]{escape(result.sequence)} v{result.version}[/bold] for {escape(result.prospect)}: "
                  f"times in {result.timezone} (country {result.country or 'unknown'}), from {result.mailbox or '-'}; "
                  f"today: {escape(result.cap_room)}", highlight=False)
    for step in result.steps:
        when = f"{step.at.astimezone(zone):%a %Y-%m-%d %H:%M}" if step.at else "-"
        label = f"{step.number}. {when}  {step.kind}" + (f" {step.step_id}" if step.step_id else "")
        console.print(f"\n[bold]{escape(label)}[/bold]" + (f"  ({escape(step.note)})" if step.note else ""),
                      highlight=False)
        if step.problem:
            console.print(f"   [red]{escape(step.problem)}[/red]", highlight=False)
        for name, value in step.headers:
            console.print(f"   {name}: {escape(value)}", highlight=False, soft_wrap=True)
        if step.text:
            console.print("\n".join(f"   | {escape(line)}" for line in step.text.splitlines()), highlight=False)
