"""``sequencer sequences``: check, load and list sequence files."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from sequencer.app.cli.common import console, fail, open_session, settings
from sequencer.core.clock import SystemClock
from sequencer.core.yaml_source import SourceError
from sequencer.sequences.versions import check_files, current_versions, sync

app = typer.Typer(help="Check, load and list sequences (templates/sequences/*.yaml).", no_args_is_help=True)


@app.command()
def check(path: Path | None = typer.Argument(None, help="A sequence file or templates folder.")) -> None:
    """Validate sequences and their templates; print every problem as file:line."""
    root = path or settings().templates_dir
    definitions, errors = check_files(root)
    for error in errors:
        console.print(f"[red]{error}[/red]", highlight=False, soft_wrap=True)
    if errors:
        fail(f"{len(errors)} problem(s) in {root}")
    for definition in definitions:
        steps = ", ".join(step["kind"] for step in definition["steps"])
        console.print(f"[green]ok[/green] {definition['name']}: {len(definition['steps'])} steps ({steps})")


@app.command()
def load(path: Path | None = typer.Argument(None, help="A sequence file or templates folder.")) -> None:
    """Store the sequences as new versions where they changed (running enrollments keep theirs)."""
    config = settings()
    with open_session(config) as session:
        try:
            results = sync(session, SystemClock().now(), path or config.templates_dir)
        except SourceError as exc:
            for error in exc.errors:
                console.print(f"[red]{error}[/red]", highlight=False, soft_wrap=True)
            fail("no sequence was loaded")
    for result in results:
        state = "new version" if result.changed else "unchanged"
        console.print(f"{result.name} v{result.version}: {state}")


@app.command("list")
def list_() -> None:
    """The current version of each stored sequence."""
    with open_session() as session:
        table = Table("name", "version", "signals", "steps", "loaded")
        for version in current_versions(session):
            definition = version.definition
            table.add_row(version.name, str(version.version), ", ".join(definition["trigger"]["signals"]),
                          str(len(definition["steps"])), f"{version.created_at:%Y-%m-%d %H:%M}")
    console.print(table)
