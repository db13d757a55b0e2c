"""``sequencer explain EMAIL``: what happened to a prospect, step by step, and why."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from sequencer.app.cli.common import console, fail, open_session, print_json
from sequencer.engine.explain import as_data, explain, local, step_label, zone_note
from sequencer.sequences.schedule import zone


def explain_command(
    email: str = typer.Argument(..., help="The prospect's email address."),
    tz: str | None = typer.Option(None, help="Show times in this zone (default: the prospect's)."),
    as_json: bool = typer.Option(False, "--json", help="The same facts as JSON (times in UTC, ISO 8601)."),
) -> None:
    """Per enrollment and step: sent at, blocked because, waiting for, stopped by."""
    if tz:
        try:
            zone(tz)
        except ValueError as exc:
            fail(f"--tz: {exc}")
    with open_session() as session:
        story = explain(session, email)
        if story is None:
            fail(f"no prospect {email!r}")
        if as_json:
            print_json(as_data(story))
            return
        prospect = story.prospect
        zone_name = tz or prospect.timezone
        whose = "your --tz" if tz else "the prospect's"
        # One zone, named once here: every row below is a bare local time in it.
        console.print(f"[bold]{escape(prospect.email)}[/bold] {escape(prospect.first_name)} "
                      f"{escape(prospect.last_name)} - {escape(prospect.title or 'no title')} - "
                      f"times in {zone_name} ({whose})")
        if zone_note(prospect):
            console.print(f"  {zone_note(prospect)}", highlight=False, markup=False, soft_wrap=True)
        for decision in story.other:
            console.print(f"  {local(decision.at, zone_name, named=False)}  {decision.kind}: {decision.reason}",
                          highlight=False, markup=False, soft_wrap=True)
        if not story.stories:
            console.print("  not enrolled in any sequence")
        for item in story.stories:
            enrollment = item.enrollment
            state = enrollment.state + (f" ({enrollment.reason})" if enrollment.reason else "")
            rule = f" by rule {enrollment.rule}" if enrollment.rule else ""
            console.print(f"\n[bold]{escape(item.version.name)}[/bold] v{item.version.version} - "
                          f"{escape(state)}{escape(rule)}")
            table = Table("#", "step", "kind", "status", "when", "detail", show_lines=False)
            for column in table.columns[:5]:
                column.no_wrap = True
            table.columns[5].ratio = 1
            for line in item.steps:
                when = local(line.at, zone_name, named=False) if line.at else ""
                table.add_row(str(line.index + 1), escape(line.step_id), line.kind, line.status, when,
                              escape(line.detail))
            console.print(table)
            for line in item.steps:
                if line.bounce_reason:
                    console.print(f"  step {line.index + 1} bounced: reason {line.bounce_reason} ({line.bounce_type}), "
                                  f"status {line.status_code or '-'}", highlight=False, markup=False, soft_wrap=True)
            for decision in item.decisions:
                rule_text = f" [rule {decision.rule}]" if decision.rule else ""
                step = step_label(decision.step_index, len(item.steps))
                console.print(f"  {local(decision.at, zone_name, named=False)}  {step:8} {decision.kind}: "
                              f"{decision.reason}{rule_text}", highlight=False, markup=False, soft_wrap=True)
