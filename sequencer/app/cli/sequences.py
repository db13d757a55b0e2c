"""``sequencer sequences``: check, load and list sequence files.

Every command that reads templates says which folder it read (``common.say_templates``), in
the one order ``config.resolve_templates`` defines, and checks them against the workspace's
vocabulary (declared signal types and custom fields, plus the custom fields of the stored
prospects when a database exists).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer
from rich.table import Table
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from sequencer.app.cli.common import (
    console,
    database_exists,
    err_console,
    fail,
    fail_source,
    open_session,
    print_json,
    say_templates,
    settings,
)
from sequencer.app.cli.preview import preview_command
from sequencer.core.clock import SystemClock
from sequencer.core.config import Settings
from sequencer.core.yaml_source import SourceError
from sequencer.enrollments.upgrade import upgrade_running
from sequencer.sending import mailboxes
from sequencer.sequences import vocabulary
from sequencer.sequences.versions import check_files, current_versions, sync

app = typer.Typer(help="Check, load and list sequences (templates/sequences/*.yaml).", no_args_is_help=True)
app.command("preview")(preview_command)  # sequencer.app.cli.preview: a prospect's calendar and emails

TEMPLATES_OPTION = typer.Option(None, "--templates", help="The templates folder (default: templates_dir in "
                                "sequencer.toml, else ./templates, else the shipped examples).")
UPGRADE_CHOICES = ("running",)


def workspace_vocabulary(config: Settings, root: Path, session: Session | None) -> vocabulary.Vocabulary:
    """The vocabulary a check or load uses, or exit naming a malformed declaration."""
    try:
        return vocabulary.for_workspace(config, root, session)
    except SourceError as exc:
        fail_source(exc, "the declared signal types cannot be read")
        raise  # unreachable


def _checking_vocabulary(config: Settings, root: Path) -> vocabulary.Vocabulary:
    """``check``'s vocabulary: with the stored prospects' custom fields when a database exists
    (a check in a fresh folder must not create one)."""
    if not database_exists(config):
        return workspace_vocabulary(config, root, None)
    try:
        with open_session(config) as session:
            return workspace_vocabulary(config, root, session)
    except OperationalError as exc:
        err_console.print(f"note: custom fields of stored prospects not read (database unavailable: {exc.orig})",
                          highlight=False, soft_wrap=True)
        return workspace_vocabulary(config, root, None)


@app.command()
def check(
    path: Path | None = typer.Argument(None, help="A sequence file or templates folder."),
    templates: Path | None = TEMPLATES_OPTION,
) -> None:
    """Validate sequences and their templates; print every problem as file:line."""
    config = settings(templates)
    root = path or config.templates_dir
    say_templates(config, path)
    definitions, errors = check_files(root, _checking_vocabulary(config, root))
    for error in errors:
        console.print(f"[red]{error}[/red]", highlight=False, soft_wrap=True)
    if errors:
        fail(f"{len(errors)} problem(s) in {root}")
    for definition in definitions:
        steps = ", ".join(step["kind"] for step in definition["steps"])
        console.print(f"[green]ok[/green] {definition['name']}: {len(definition['steps'])} steps ({steps})")


@app.command()
def load(
    path: Path | None = typer.Argument(None, help="A sequence file or templates folder."),
    templates: Path | None = TEMPLATES_OPTION,
    upgrade: str | None = typer.Option(None, "--upgrade", metavar="running",
                                       help="Also move running enrollments to the new version at their current "
                                            "step, where the steps up to it are unchanged."),
) -> None:
    """Store the sequences as new versions where they changed (running enrollments keep theirs
    unless --upgrade running)."""
    if upgrade is not None and upgrade not in UPGRADE_CHOICES:
        fail(f"--upgrade: {upgrade!r} is not one of {', '.join(UPGRADE_CHOICES)}")
    config = settings(templates)
    root = path or config.templates_dir
    say_templates(config, path)
    now = SystemClock().now()
    with open_session(config) as session:
        try:
            results = sync(session, now, root, workspace_vocabulary(config, root, session))
        except SourceError as exc:
            fail_source(exc, "no sequence was loaded")
        for result in results:
            state = "new version" if result.changed else "unchanged"
            console.print(f"{result.name} v{result.version}: {state}")
        try:  # the sequences name their mailboxes: load the config's with them
            mailboxes.sync_from_settings(session, config, now.date())
        except mailboxes.MailboxError as exc:
            fail(str(exc))
        if upgrade == "running":
            _upgrade(session, now, [result.name for result in results])


def _upgrade(session: Session, now: datetime, names: list[str]) -> None:
    upgrades = upgrade_running(session, now, names)
    moved = [u for u in upgrades if u.moved]
    kept = [u for u in upgrades if not u.moved]
    for u in moved:
        console.print(f"upgraded enrollment {u.enrollment_id} ({u.email}) {u.sequence} v{u.from_version} -> "
                      f"v{u.to_version} at step {u.step}", highlight=False)
    for u in kept:
        console.print(f"[yellow]not moved[/yellow] enrollment {u.enrollment_id} ({u.email}) {u.sequence} "
                      f"v{u.from_version}: {u.reason}", highlight=False, soft_wrap=True)
    console.print(f"{len(moved)} running enrollment(s) upgraded, {len(kept)} kept on their version")


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="One JSON array, for scripts.")) -> None:
    """The current version of each stored sequence."""
    with open_session() as session:
        if as_json:
            print_json([{"name": v.name, "version": v.version, "signals": v.definition["trigger"]["signals"],
                         "steps": len(v.definition["steps"]), "loaded_at": v.created_at}
                        for v in current_versions(session)])
            return
        table = Table("name", "version", "signals", "steps", "loaded")
        for version in current_versions(session):
            definition = version.definition
            table.add_row(version.name, str(version.version), ", ".join(definition["trigger"]["signals"]),
                          str(len(definition["steps"])), f"{version.created_at:%Y-%m-%d %H:%M}")
    console.print(table)
