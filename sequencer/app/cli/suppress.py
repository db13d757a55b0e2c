"""``sequencer suppress``: keep the do-not-contact list by hand or in bulk.

``check`` prints which entry matched and exits 3 when the address is suppressed (0 when
it may be contacted, 1 for unusable input), so a script can ask it.
``remove`` exits 1 when there was nothing to remove, so a typo is not mistaken for success.
"""

from __future__ import annotations

import getpass
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from sequencer.app.cli.common import console, fail, open_session
from suppression.csv_io import CsvError, export_csv, import_csv, parse_expiry
from suppression.normalize import normalize_email
from suppression.store import (
    KINDS,
    REASONS,
    add_entry,
    find_suppression,
    infer_kind,
    make_spec,
    normalize_value,
    remove_entry,
)

app = typer.Typer(
    no_args_is_help=True,
    help="Suppression list: addresses, domains and accounts that must never be contacted.",
)

KindOption = Annotated[
    str | None,
    typer.Option(
        "--kind",
        "-k",
        help=f"One of {', '.join(KINDS)}; default: email if the value has @, else domain.",
    ),
]


def say(message: str) -> None:
    """Print one fact unwrapped and unstyled, so addresses stay whole and greppable."""
    console.print(message, highlight=False, markup=False, soft_wrap=True)


def _now() -> datetime:
    return datetime.now(UTC)


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@app.command()
def add(
    value: Annotated[str, typer.Argument(help="Address, domain or account id.")],
    kind: KindOption = None,
    reason: Annotated[str, typer.Option(help=f"One of {', '.join(REASONS)}.")] = "manual",
    note: Annotated[str, typer.Option(help="Free text kept with the entry.")] = "",
    expires: Annotated[
        str | None, typer.Option(help="ISO 8601 date or time after which the entry lapses (UTC).")
    ] = None,
    by: Annotated[str | None, typer.Option(help="Who is adding it (default: cli:$USER).")] = None,
) -> None:
    """Add an entry, or update the existing one for the same value."""
    try:
        spec = make_spec(
            value, kind=kind, reason=reason, note=note, expires_at=parse_expiry(expires or "")
        )
    except ValueError as exc:
        fail(str(exc))
    with open_session() as session:
        entry, change = add_entry(session, _now(), spec, _who(by))
    if change == "kept" and entry.reason != spec.reason:
        say(f"kept {entry.kind} {entry.value}: a {entry.reason} entry is never weakened")
    else:
        say(f"{change} {entry.kind} {entry.value} ({entry.reason})")


@app.command()
def remove(
    value: Annotated[str, typer.Argument(help="Address, domain or account id.")],
    kind: KindOption = None,
) -> None:
    """Delete an entry; exits 1 if there was none."""
    kind = (kind or infer_kind(value)).strip().lower()
    try:
        normalized = normalize_value(kind, value)
    except ValueError as exc:
        fail(str(exc))
    with open_session() as session:
        removed = remove_entry(session, kind, normalized)
    if not removed:
        fail(f"no {kind} entry for {normalized}")
    say(f"removed {kind} {normalized}")


@app.command()
def check(
    email: Annotated[str, typer.Argument(help="The address to check.")],
    account: Annotated[int | None, typer.Option(help="Also check this account id.")] = None,
) -> None:
    """Say whether an address may be contacted now, and which entry forbids it.

    Exits 0 when it may be contacted, 3 when it is suppressed (so a script can ask
    ``if sequencer suppress check ADDRESS; then ...``), 1 for an unusable address.
    """
    try:
        address = normalize_email(email)
    except ValueError as exc:
        fail(str(exc))
    with open_session() as session:
        entry = find_suppression(session, _now(), address, account)
    if entry is None:
        say(f"not suppressed: {address}")
        return
    expiry = f", expires {entry.expires_at.isoformat()}" if entry.expires_at else ""
    added = entry.added_at.isoformat() if entry.added_at else "unknown"
    say(
        f"suppressed: {entry.reason} ({entry.kind} {entry.value}),"
        f" added by {entry.added_by or 'unknown'} at {added}{expiry}",
    )
    raise typer.Exit(SUPPRESSED_EXIT)


SUPPRESSED_EXIT = 3  # distinct from 1 (a bad address) and 2 (a usage error)


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV file.")],
    reason: Annotated[str, typer.Option(help="Reason for rows that leave it blank.")] = "manual",
    by: Annotated[str | None, typer.Option(help="Who is adding them (default: cli:$USER).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per transaction.")] = 1000,
) -> None:
    """Import a CSV with header value,kind,reason,expires_at,note.

    Good rows are stored even when others are bad; every bad row is listed with its
    line number, and the command then exits 1. Importing again is safe.
    """
    if reason not in REASONS:
        fail(f"unknown reason {reason!r}: expected one of {', '.join(REASONS)}")
    progress = Progress(
        TextColumn("importing"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    with open_session() as session, progress, path.open("rb") as source:
        task = progress.add_task("import", total=path.stat().st_size)
        try:
            report = import_csv(
                session,
                _now(),
                source,
                name=str(path),
                default_reason=reason,
                added_by=_who(by),
                batch_size=batch_size,
                on_progress=lambda done: progress.update(task, completed=done),
            )
        except CsvError as exc:
            progress.stop()
            fail(str(exc))
    for note in report.notes:
        say(f"note: {note}")
    for bad in report.bad:
        say(f"{path}: {bad}")
    say(
        f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged,"
        f" {len(report.bad)} bad rows"
    )
    if report.bad:
        raise typer.Exit(1)


@app.command()
def export(
    path: Annotated[
        Path | None, typer.Argument(help="Output file; default: standard output.")
    ] = None,
) -> None:
    """Write the whole list (expired entries too) as CSV, re-importable as is."""
    with open_session() as session:
        if path is None:
            export_csv(session, sys.stdout)
            return
        with path.open("w", encoding="utf-8", newline="") as out:
            count = export_csv(session, out)
    say(f"exported {count} entries to {path}")
