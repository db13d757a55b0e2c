"""``sequencer inbound poll``: read new replies and bounces from the mailboxes over IMAP.

A thin shell: it picks the mailboxes, builds each one's connection from the settings and
hands every new message to ``sequencer.inbound.ingest.ingest_raw`` (imported lazily, so
this module loads even where ingestion is not wired in). One mailbox failing does not
stop the others; the exit status is 1 when anything failed, so cron and CI notice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer
from rich.table import Table
from sqlmodel import Session, select

from sequencer.app.cli.common import console, err_console, fail, open_session, settings
from sequencer.core.clock import SystemClock
from sequencer.core.config import Settings
from sequencer.core.models import Mailbox
from sequencer.inbound.imap_poll import (
    ImapConfigError,
    PollError,
    PollResult,
    imap_connector,
    imap_settings,
    poll_mailbox,
)

IngestFactory = Callable[[Session, Settings], Callable[[bytes], object]]


def default_ingest(session: Session, config: Settings) -> Callable[[bytes], object]:
    """The production callback: store, classify and act on one raw message."""
    from sequencer.inbound.ingest import ingest_raw

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
    configured = {
        str(entry.get("address", "")).lower()
        for entry in config.mailboxes
        if entry.get("imap_host")
    }
    if address is None:
        mailboxes = [m for m in mailboxes if m.address.lower() in configured]
        if not mailboxes:
            console.print("No mailbox has IMAP settings (imap_host); nothing to poll.")
            return True
    ingest = make_ingest(session, config)
    table = Table("Mailbox", "Fetched", "Ingested", "Failed", title=f"IMAP poll ({folder})")
    ok = True
    for box in mailboxes:
        try:
            connect = imap_connector(imap_settings(box, config))
            result = poll_mailbox(session, box, connect, ingest, folder=folder)
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
