"""``sequencer prospects import|list|show``: a CRM export in, and what is stored, out."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table
from sqlmodel import select

from sequencer.app.cli.common import console, fail, fail_source, open_session, settings
from sequencer.core.clock import SystemClock
from sequencer.core.models import Account, Enrollment, Prospect, SequenceVersion
from sequencer.core.yaml_source import SourceError
from sequencer.intake import column_map, prospect_import
from sequencer.intake import prospects as prospect_store

app = typer.Typer(help="Load and look up prospects.", no_args_is_help=True)


def _say(text: str, style: str | None = None) -> None:
    """Print text from a file as it is: no markup, no highlighting ([brackets] stay)."""
    console.print(text, style=style, highlight=False, markup=False, soft_wrap=True)


@app.command("import")
def import_command(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="A CSV export (Excel's encodings, , ; or tab)."),
    preset: str = typer.Option("", "--preset", help=f"The CRM it came from: {', '.join(column_map.PRESETS)}."),
    map_file: Path | None = typer.Option(None, "--map", exists=True, dir_okay=False,
                                         help="A YAML column map (the presets' format); wins over --preset."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the mapping and the first rows; store nothing."),
    custom_fields: list[str] = typer.Option([], "--custom-fields",
                                            help="Unmapped columns to keep as custom fields (comma-separated, "
                                                 "repeatable), or 'all'. Default: the declared custom_fields."),
) -> None:
    """Import prospects from a CRM export: create, or update by email."""
    config = settings()
    try:
        mapping = prospect_import.column_map_for(preset, map_file)
    except SourceError as exc:
        fail_source(exc, f"the column map {map_file} cannot be used")
    except ValueError as exc:
        fail(f"--preset: {exc}")
    wanted = [name.strip() for item in custom_fields for name in item.split(",") if name.strip()]
    wanted = wanted or list(config.prospect_custom_fields)
    if dry_run:
        result = prospect_import.dry_run(path, mapping, wanted)
        if preset or map_file:
            result.suggestion = None  # the SDR chose the map
        _show_mapping(result)
    else:
        with open_session(config) as session, Progress(console=console, transient=True) as progress:
            bar = progress.add_task("prospects", total=prospect_store.count_rows(path))
            result = prospect_import.import_file(session, SystemClock().now(), path, mapping, wanted,
                                                 lambda n: progress.advance(bar, n))
        if result.mapping is not None and result.mapping.unmapped:
            _say(f"not imported (unmapped columns): {', '.join(result.mapping.unmapped)}")
    report = result.report
    for note in report.notes:
        _say(f"note: {note}")
    for warning in report.warnings:
        _say(f"warning: {warning}", "yellow")
    for error in report.errors:
        _say(error, "red")
    warnings = f"{len(report.warnings)} warning" + ("" if len(report.warnings) == 1 else "s")
    about = warnings if dry_run else f"{report.created} new, {warnings}"
    console.print(f"{report.stored} prospect(s) {'would be stored' if dry_run else 'stored'}, "
                  f"{len(report.errors)} row(s) refused ({about})", highlight=False)
    if report.errors:
        raise typer.Exit(1)


def _show_mapping(result: prospect_import.FileImport) -> None:
    mapping = result.mapping
    if mapping is None:
        return
    table = Table("column", "field", title="mapping")
    for name, indexes in mapping.fields.items():
        for rank, index in enumerate(indexes):
            table.add_row(escape(mapping.headers[index]), name + (" (if the one above is empty)" if rank else ""))
    for name, index in mapping.custom.items():
        table.add_row(escape(mapping.headers[index]), f"custom: {name}")
    console.print(table)
    if mapping.unmapped:
        _say(f"unmapped (not imported; --custom-fields NAME or all keeps them): {', '.join(mapping.unmapped)}")
    if result.suggestion:
        name, more = result.suggestion
        _say(f"hint: --preset {name} maps {more} more column(s) of this file")
    for where, stored in result.preview:
        _say(f"{where}: {json.dumps(stored, ensure_ascii=False)}")


@app.command("list")
def list_command(
    account: str = typer.Option("", "--account", help="Only this account (its domain or company name)."),
    owner: str = typer.Option("", "--owner", help="Only this owner's prospects."),
    limit: int = typer.Option(200, "--limit", min=1, max=100_000, help="At most this many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Prospects, newest first, with their account and time zone."""
    with open_session() as session:
        rows = prospect_store.listing(session, account, owner, limit)
    if as_json:
        typer.echo(json.dumps([prospect_store.as_dict(p, a) for p, a in rows], indent=2, ensure_ascii=False))
        return
    table = Table("email", "name", "title", "account", "time zone", "owner")
    for prospect, acct in rows:
        zone = prospect.timezone + {"inferred": " (inferred)", "none": " (unknown)"}.get(prospect.timezone_source, "")
        table.add_row(escape(prospect.email), escape(f"{prospect.first_name} {prospect.last_name}".strip()),
                      escape(prospect.title), escape(acct.name if acct else "-"), zone, escape(prospect.owner))
    console.print(table)


@app.command("show")
def show_command(
    email: str = typer.Argument(..., help="The prospect's email address."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """One prospect: every field, the account, custom fields and enrollments."""
    with open_session() as session:
        prospect = session.exec(select(Prospect).where(Prospect.email == email.strip().lower())).first()
        if prospect is None:
            fail(f"no prospect {email!r}")
        account = session.get(Account, prospect.account_id) if prospect.account_id else None
        data = prospect_store.as_dict(prospect, account)
        data["enrollments"] = [
            {"id": e.id, "sequence": name, "version": version, "state": e.state, "reason": e.reason}
            for e, name, version in session.exec(
                select(Enrollment, SequenceVersion.name, SequenceVersion.version)
                .join(SequenceVersion, SequenceVersion.id == Enrollment.sequence_version_id)
                .where(Enrollment.prospect_id == prospect.id).order_by(Enrollment.id))
        ]
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    _say(f"{data['email']}: {data['first_name']} {data['last_name']}".rstrip())
    for key in ("title", "phone", "linkedin_url", "owner", "country", "region"):
        if data[key]:
            _say(f"  {key}: {data[key]}")
    source = {"inferred": "inferred from country/region", "none": "unknown: sending windows run in UTC"}
    _say(f"  timezone: {data['timezone']}" + (f" ({source[data['timezone_source']]})"
                                              if data["timezone_source"] in source else ""))
    acct = data["account"]
    if acct:
        about = ", ".join(str(v) for v in (acct["industry"], acct["employees"] and f"{acct['employees']} employees")
                          if v)
        _say(f"  account: {acct['name']}" + (f" ({acct['domain']})" if acct["domain"] else " (no domain)")
             + (f", {about}" if about else ""))
    for key, value in data["custom"].items():
        _say(f"  custom.{key}: {value}")
    for item in data["enrollments"]:
        _say(f"  enrollment #{item['id']}: {item['sequence']} v{item['version']} {item['state']}"
             + (f" ({item['reason']})" if item["reason"] else ""))
