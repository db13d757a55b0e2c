"""``sequencer rules``: check a stop-rules file before the engine relies on it; explain what it does."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sequencer.app.cli.common import console, err_console, fail, open_session, say_templates, settings
from sequencer.core.clock import SystemClock
from sequencer.core.yaml_source import SourceError, load_yaml
from sequencer.rules import dry_run
from sequencer.rules.book import RuleBook, RulesError
from sequencer.rules.parse import load_rules

app = typer.Typer(no_args_is_help=True, help="Manager-owned stop rules.")

RulesPath = Annotated[Path | None, typer.Argument(
    help="Rules file (default: the configured rules_file, else the built-ins).")]
Templates = Annotated[Path | None, typer.Option("--templates", help="The templates folder whose sequences/ the "
                                                "rules may name (default: the workspace's).")]


@app.command()
def check(
    path: RulesPath = None,
    templates: Templates = None,
    any_sequence: bool = typer.Option(False, "--any-sequence", help="Do not check the sequence names the rules use "
                                      "against the templates folder (a file shared by several teams)."),
) -> None:
    """Validate a rules file: print OK and the effective rules, or every error (file:line) and exit 1.

    Refused too: rules that would ignore an unsubscribe or a complaint or keep emailing a
    hard-bounced address, unbounded retries, and sequence names (overrides, enroll
    targets) that no sequence file in the templates folder has.
    """
    config = settings(templates)
    path = path or config.rules_file
    known = None
    if not any_sequence:
        say_templates(config, templates)
        known = sequence_names(config.templates_dir)
    try:
        book = load_rules(path, known_sequences=known)
    except RulesError as exc:
        for error in exc.errors:
            err_console.print(error, highlight=False, markup=False, soft_wrap=True)
        if known is not None and any("unknown sequence" in error for error in exc.errors):
            err_console.print(f"known sequences: {', '.join(sorted(known)) or 'none'}", highlight=False)
        err_console.print(f"{len(exc.errors)} error(s); the rules file was not accepted.")
        raise typer.Exit(1) from exc
    console.print(f"OK: {book.source}", highlight=False)
    console.print(_summary(book))


def sequence_names(root: Path) -> set[str]:
    """The ``name`` of every sequence file under ``root`` (a broken file still names its sequence)."""
    folder = root / "sequences" if (root / "sequences").is_dir() else root
    names = set()
    for path in sorted(folder.glob("*.y*ml")):
        try:
            data = load_yaml(path).data
        except SourceError:
            continue
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            names.add(data["name"].strip())
    return names


@app.command()
def explain(
    event: str = typer.Argument(..., help="reply, reply.positive, bounce.hard, task.not_interested, meeting_booked, "
                                "..."),
    sequence: str = typer.Option("", "--sequence", help="As it applies in this sequence (its overrides)."),
    prospect: str = typer.Option("", "--prospect", help="Dry-run it on this prospect's running enrollment: what "
                                 "would be stopped, suppressed, paused (nothing is kept)."),
    path: Path | None = typer.Option(None, "--rules", help="Rules file (default: the configured one)."),
) -> None:
    """What would happen on EVENT, step by step: the rule that applies, each action, and (with
    --prospect) what the engine's own code does with it, rolled back."""
    config = settings()
    try:
        book = load_rules(path or config.rules_file)
        rule = dry_run.resolve(book, event, sequence or None)
    except RulesError as exc:
        for error in exc.errors:
            err_console.print(error, highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1) from exc
    except ValueError as exc:
        fail(str(exc))
    console.print(f"{event}{f' in {sequence}' if sequence else ''}: rule {rule.name} ({book.source})",
                  highlight=False)
    for number, action in enumerate(rule.actions, 1):
        console.print(f"  {number}. {dry_run.describe(action)}", highlight=False)
    if not prospect:
        return
    with open_session(config) as session:
        try:
            enrollment, done = dry_run.simulate(session, SystemClock().now(), book, event, prospect, sequence or None)
        except ValueError as exc:
            fail(str(exc))
        where = f"enrollment #{enrollment.id} ({enrollment.sequence_name})" if enrollment else "no running enrollment"
    console.print(f"dry run for {prospect}, {where}:", highlight=False)
    for item in done or ["nothing would change"]:
        console.print(f"  - {item}", highlight=False)
    console.print("(nothing was changed)")


def _summary(book: RuleBook) -> Table:
    """Every rule a sequence can get: the effective defaults, then each override."""
    table = Table("Rule", "Actions", title="Effective stop rules")
    for rule in book.effective_defaults():
        table.add_row(rule.name, ", ".join(str(action) for action in rule.actions))
    for rule in book.rules():
        if rule.name.startswith("sequences."):
            table.add_row(rule.name, ", ".join(str(action) for action in rule.actions))
    return table
