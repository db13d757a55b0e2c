"""``sequencer report deliverability|pipeline``: the reports, as tables, JSON, CSV or an HTML page."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from sequencer.app.cli.common import console, fail, open_session, settings
from sequencer.core.clock import SystemClock
from sequencer.core.config import ConfigError
from sequencer.core.yaml_source import SourceError
from sequencer.reports import deliverability, formats, page, pipeline
from sequencer.reports.period import ReportError, scope

app = typer.Typer(help="Deliverability and pipeline reports.", no_args_is_help=True)

SINCE = typer.Option(None, "--since", help="Start (YYYY-MM-DD or ISO time, UTC); default: 30 days before --until.")
UNTIL = typer.Option(None, "--until", help="End (a date includes that whole day); default: now.")
MAILBOX = typer.Option("", "--mailbox", help="Only this mailbox.")
DOMAIN = typer.Option("", "--domain", help="Only the mailboxes of this sending domain.")
FORMAT = typer.Option("table", "--format", help="table, json, csv or html.")
OUTPUT = typer.Option(None, "--output", help="Write to this file instead of the terminal.")


def _report(builder: Callable[..., dict[str, Any]], since: str | None, until: str | None, mailbox: str, domain: str,
            output_format: str, output: Path | None) -> None:
    if output_format not in formats.FORMATS:
        fail(f"--format: {output_format!r} is not one of {', '.join(formats.FORMATS)}")
    config = settings()
    now = SystemClock().now()
    with open_session() as session:
        try:
            document = builder(session, now, config, scope(session, now, since, until, mailbox, domain))
        except (ReportError, ConfigError) as exc:
            fail(str(exc))
        except SourceError as exc:  # the qualification file the meeting figures read
            fail("\n".join(exc.errors))
    if output_format == "table":
        if output is not None:
            fail("--output: the table format is for the terminal; give --format json, csv or html")
        formats.print_tables(document, console)
        return
    text = {"json": formats.to_json, "csv": formats.to_csv, "html": page.render}[output_format](document)
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8", newline="")
    except OSError as exc:
        fail(f"--output: cannot write {output}: {exc.strerror}")
    console.print(f"{document['schema']} report written to {output}" + (f" ({document['note']})"
                                                                         if document["empty"] else ""))


@app.command("deliverability")
def deliverability_command(since: str | None = SINCE, until: str | None = UNTIL, mailbox: str = MAILBOX,
                           domain: str = DOMAIN, output_format: str = FORMAT, output: Path | None = OUTPUT) -> None:
    """Per mailbox and sending domain: sends, bounces, complaints, replies, caps, domain checks, DMARC, status."""
    _report(deliverability.build, since, until, mailbox, domain, output_format, output)


@app.command("pipeline")
def pipeline_command(since: str | None = SINCE, until: str | None = UNTIL, mailbox: str = MAILBOX,
                     domain: str = DOMAIN, output_format: str = FORMAT, output: Path | None = OUTPUT) -> None:
    """Speed to lead, touches and replies per step and variant, meetings, cost per accepted meeting."""
    _report(pipeline.build, since, until, mailbox, domain, output_format, output)
