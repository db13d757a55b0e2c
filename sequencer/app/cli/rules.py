"""``sequencer rules``: check a stop-rules file before the engine relies on it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sequencer.app.cli.common import console, err_console, settings
from sequencer.rules.book import RuleBook, RulesError
from sequencer.rules.parse import load_rules

app = typer.Typer(no_args_is_help=True, help="Manager-owned stop rules.")


@app.command()
def check(
    path: Annotated[
        Path | None,
        typer.Argument(help="Rules file (default: the configured rules_file, else the built-ins)."),
    ] = None,
) -> None:
    """Validate a rules file: print OK and the effective rules, or every error and exit 1."""
    if path is None:
        path = settings().rules_file
    try:
        book = load_rules(path)
    except RulesError as exc:
        for error in exc.errors:
            err_console.print(error, highlight=False, markup=False, soft_wrap=True)
        err_console.print(f"{len(exc.errors)} error(s); the rules file was not accepted.")
        raise typer.Exit(1) from exc
    console.print(f"OK: {book.source}", highlight=False)
    console.print(_summary(book))


def _summary(book: RuleBook) -> Table:
    """Every rule a sequence can get: the effective defaults, then each override."""
    table = Table("Rule", "Actions", title="Effective stop rules")
    for rule in book.effective_defaults():
        table.add_row(rule.name, ", ".join(str(action) for action in rule.actions))
    for rule in book.rules():
        if rule.name.startswith("sequences."):
            table.add_row(rule.name, ", ".join(str(action) for action in rule.actions))
    return table
