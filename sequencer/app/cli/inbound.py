"""``sequencer inbound``: take in replies, bounces, auto-replies and complaints.

``ingest`` reads .eml / mbox files, ``classify`` shows what a message is and which touch
it answers (changing nothing), ``poll`` reads new mail from each mailbox over IMAP. All
three hand each message to ``sequencer.inbound.ingest``; one mailbox failing does not stop
the others, and the exit status is 1 when anything failed, so cron and CI notice.
"""

from __future__ import annotations

import contextlib
import json
import mailbox as mbox
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlmodel import Session, select

from sequencer.app.cli.common import console, database_exists, err_console, fail, open_session, settings
from sequencer.core.clock import SystemClock
from sequencer.core.config import Settings
from sequencer.core.models import Mailbox, Touch
from sequencer.inbound import mailbox_poll
from sequencer.inbound import match as matching
from sequencer.inbound.classify import classify as classify_raw
from sequencer.inbound.imap_poll import (
    ImapConfigError,
    PollError,
    PollResult,
    imap_connector,
    poll_mailbox,
)
from sequencer.inbound.ingest import IngestResult, ingest_raw, our_domains, quarantine_raw

IngestFactory = Callable[[Session, Settings], Callable[[bytes], object]]

app = typer.Typer(help="Inbound mail: ingest .eml / mbox files, classify, poll IMAP.", no_args_is_help=True)


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
                result = _ingest_or_quarantine(session, config, label, raw)
                if result is None:
                    quarantined += 1
                    continue
                quarantined += result.message.quarantined and not result.duplicate
                console.print(f"{label}: {result.message.kind} - {result.action}", highlight=False, soft_wrap=True)
    if quarantined:
        raise typer.Exit(1)


def _ingest_or_quarantine(session: Session, config: Settings, label: str, raw: bytes) -> IngestResult | None:
    """One message of a batch: ingested, else quarantined with why; None (said on stderr) when
    neither could be stored. Never raises for one message, so the rest of the batch goes in."""
    try:
        return ingest_raw(session, SystemClock().now(), config, raw)
    except Exception as exc:
        session.rollback()
        reason = f"ingest failed: {type(exc).__name__}: {exc}"
    try:
        return quarantine_raw(session, SystemClock().now(), raw, reason)
    except Exception as exc:
        session.rollback()
        err_console.print(f"{label}: not stored ({reason}; quarantine failed: {type(exc).__name__}: {exc}); "
                          "ingest the file again once that is fixed", highlight=False, markup=False, soft_wrap=True)
        return None


def message_files(paths: list[Path]) -> list[Path]:
    """The files to read: each file named, and every file in a folder named (sorted, not recursive)."""
    found: list[Path] = []
    for path in paths:
        found.extend(sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path])
    return found


@app.command()
def classify(
    paths: list[Path] = typer.Argument(..., exists=True, help="Messages: .eml files, folders of them, mbox files."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per message, one per line."),
) -> None:
    """Print what each message is and which touch it answers, without changing anything
    (in a folder with no database yet, none is made: the messages are classified, not matched)."""
    config = settings()
    table = Table("message", "kind", "type", "reason", "status", "touch", "diagnostic / evidence")
    table.columns[0].overflow, table.columns[0].min_width = "fold", 12
    for column, width in zip(table.columns[1:5], (9, 5, 12, 7), strict=True):
        column.no_wrap, column.min_width = True, width  # never cut: what the message is
    diagnostic = table.columns[6]  # one line a message, the rest in --json: a folder to triage
    diagnostic.no_wrap, diagnostic.overflow, diagnostic.max_width = True, "ellipsis", max(16, console.width - 64)
    with contextlib.ExitStack() as stack:
        session = stack.enter_context(open_session(config)) if database_exists(config) else None
        domains = our_domains(session) if session is not None else frozenset()
        for path in message_files(paths):
            for label, raw in raw_messages(path):
                result = classify_raw(raw, our_domains=domains)
                match = matching.find(session, result, config.secret_key) if session is not None else None
                touch: Touch | None = match.touch if match else None
                if as_json:
                    print(json.dumps({"message": label, "classification": result.to_dict(),
                                      "match": match.to_dict() if match else None,
                                      "enrollment_id": touch.enrollment_id if touch else None}, default=str))
                    continue
                why = result.diagnostic or (result.evidence[-1] if result.evidence else result.reason or "")
                if result.return_date:
                    why = f"back {result.return_date.isoformat()}; {why}"
                table.add_row(_short(label), result.kind, result.bounce_type or result.sentiment or "",
                              result.bounce_reason or "", result.status_code or "",
                              f"#{touch.id} by {match.method}, {match.strength}" if touch else "",
                              " ".join(why.split())[:160])
    if not as_json:
        console.print(table)


def _short(label: str) -> str:
    """A message's label without the folders above its own (the full path is in --json)."""
    path, _, index = label.partition("#")
    parts = Path(path).parts
    return str(Path(*parts[-2:])) + (f"#{index}" if index else "")


def default_ingest(session: Session, config: Settings) -> Callable[[bytes], object]:
    """The production callback: store, classify and act on one raw message."""
    clock = SystemClock()
    return lambda raw: ingest_raw(session, clock.now(), config, raw)


def poll_command(
    mailbox: Annotated[
        str | None, typer.Option("--mailbox", help="Poll only this address.")
    ] = None,
    folder: Annotated[str, typer.Option(help="IMAP folder to read.")] = "INBOX",
) -> None:
    """Poll every mailbox that has IMAP settings (or just --mailbox) for new messages."""
    config = settings()
    with open_session(config) as session:
        ok = poll_mailboxes(session, config, default_ingest, address=mailbox, folder=folder)
    if not ok:
        raise typer.Exit(1)


def poll_mailboxes(
    session: Session,
    config: Settings,
    make_ingest: IngestFactory,
    *,
    address: str | None = None,
    folder: str = "INBOX",
) -> bool:
    """Poll the chosen mailboxes, print a summary; False when any mailbox or message failed."""
    query = select(Mailbox).order_by(Mailbox.address)
    if address is not None:
        query = query.where(Mailbox.address == address.strip().lower())
    mailboxes = list(session.exec(query))
    if address is not None and not mailboxes:
        fail(f"no mailbox {address!r}; add it to the mailboxes in the config first")
    configured = {box.address for box in mailbox_poll.pollable(session, config)}  # on the row or in the config
    if address is None:
        mailboxes = [m for m in mailboxes if m.address.lower() in configured]
        if not mailboxes:
            console.print("No mailbox has IMAP settings (imap_host); nothing to poll.")
            return True
    ingest = make_ingest(session, config)
    clock = SystemClock()

    def quarantine(raw: bytes, reason: str) -> object:
        """A message whose ingest raised is stored quarantined before the cursor passes it."""
        return quarantine_raw(session, clock.now(), raw, reason)

    table = Table("Mailbox", "Fetched", "Ingested", "Failed", title=f"IMAP poll ({folder})")
    ok = True
    for box in mailboxes:
        try:
            connect = imap_connector(mailbox_poll.imap_of(box, config))
            result = poll_mailbox(session, box, connect, ingest, quarantine=quarantine, folder=folder)
        except (ImapConfigError, PollError) as exc:
            err_console.print(
                f"{box.address}: {exc}", highlight=False, markup=False, soft_wrap=True
            )
            table.add_row(box.address, "-", "-", "error")
            ok = False
            continue
        _report(box, result)
        table.add_row(box.address, str(result.fetched), str(result.ingested), str(result.failed))
        ok = ok and not result.failed
    console.print(table)
    return ok


def _report(box: Mailbox, result: PollResult) -> None:
    if result.restarted:
        console.print(f"{box.address}: UIDVALIDITY changed; the folder was read from the start")
    for error in result.errors:
        err_console.print(f"{box.address}: {error}", highlight=False, markup=False, soft_wrap=True)


app.command("poll")(poll_command)
