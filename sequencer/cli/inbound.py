"""``sequencer inbound``: take in replies, bounces and auto-replies."""

from __future__ import annotations

import mailbox as mbox
from pathlib import Path

import typer

from sequencer.cli.common import console, open_session, settings
from sequencer.clock import SystemClock
from sequencer.inbound_ingest import ingest_raw

app = typer.Typer(help="Inbound mail: ingest .eml / mbox files.", no_args_is_help=True)


def raw_messages(path: Path) -> list[tuple[str, bytes]]:
    """(label, raw bytes) for an .eml file or every message of an mbox file."""
    data = path.read_bytes()
    if data.startswith(b"From ") and path.suffix.lower() != ".eml":
        box = mbox.mbox(str(path), create=False)
        return [(f"{path}#{i + 1}", box.get_bytes(key)) for i, key in enumerate(box.keys())]
    return [(str(path), data)]


@app.command()
def ingest(files: list[Path] = typer.Argument(..., exists=True, dir_okay=False)) -> None:
    """Ingest raw messages (.eml or mbox); the same message twice changes nothing."""
    config = settings()
    with open_session(config) as session:
        for path in files:
            for label, raw in raw_messages(path):
                result = ingest_raw(session, SystemClock().now(), config, raw)
                console.print(f"{label}: {result.message.kind or 'message'} - {result.action}", highlight=False)
