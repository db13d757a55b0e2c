"""``sequencer inbound``: take in replies, bounces, auto-replies and complaints."""

from __future__ import annotations

import json
import mailbox as mbox
from pathlib import Path

import typer
from rich.table import Table

from sequencer.app.cli.common import console, open_session, settings
from sequencer.app.cli.inbound_poll import poll_command
from sequencer.core.clock import SystemClock
from sequencer.core.models import Touch
from sequencer.inbound import match as matching
from sequencer.inbound.classify import classify as classify_raw
from sequencer.inbound.ingest import ingest_raw, our_domains

app = typer.Typer(help="Inbound mail: ingest .eml / mbox files, classify, poll IMAP.", no_args_is_help=True)
app.command("poll")(poll_command)


def raw_messages(path: Path) -> list[tuple[str, bytes]]:
    """(label, raw bytes) for an .eml file or every message of an mbox file."""
    with path.open("rb") as handle:
        looks_like_mbox = handle.read(5) == b"From "
    if looks_like_mbox and path.suffix.lower() != ".eml":
        box = mbox.mbox(str(path), create=False)
        return [(f"{path}#{i + 1}", box.get_bytes(key)) for i, key in enumerate(box.keys())]
    return [(str(path), path.read_bytes())]


@app.command()
def ingest(files: list[Path] = typer.Argument(..., exists=True, dir_okay=False)) -> None:
    """Ingest raw messages (.eml or mbox); the same message twice changes nothing."""
    config = settings()
    quarantined = 0
    with open_session(config) as session:
        for path in files:
            for label, raw in raw_messages(path):
                result = ingest_raw(session, SystemClock().now(), config, raw)
                quarantined += result.message.quarantined and not result.duplicate
                console.print(f"{label}: {result.message.kind} - {result.action}", highlight=False, soft_wrap=True)
    if quarantined:
        raise typer.Exit(1)


@app.command()
def classify(
    file: Path = typer.Argument(..., exists=True, dir_okay=False),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Print what a message is and which touch it answers, without changing anything."""
    raw = file.read_bytes()
    with open_session() as session:
        result = classify_raw(raw, our_domains=our_domains(session))
        match = matching.find(session, result)
        touch: Touch | None = match.touch
        enrollment_id = touch.enrollment_id if touch else None
    if as_json:
        print(json.dumps({"classification": result.to_dict(), "match": match.to_dict(),
                          "enrollment_id": enrollment_id}, indent=2, default=str))
        return
    table = Table("field", "value", show_header=False)
    table.add_row("kind", result.kind)
    for name in ("sentiment", "bounce_type", "status_code", "diagnostic", "return_date", "feedback_type",
                 "complained_recipient", "original_message_id", "verp_token", "language"):
        value = getattr(result, name)
        if value:
            table.add_row(name.replace("_", " "), str(value))
    if result.bounced_recipients:
        table.add_row("bounced recipients", ", ".join(result.bounced_recipients))
    if result.new_contacts:
        table.add_row("new contacts", ", ".join(result.new_contacts))
    if touch is not None:
        table.add_row("matched touch", f"#{touch.id} (enrollment #{enrollment_id}) by {match.method}, "
                      f"{match.strength}: {match.evidence}")
    else:
        table.add_row("matched touch", "none")
    table.add_row("evidence", "\n".join(result.evidence))
    console.print(table)
