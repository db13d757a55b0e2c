"""``sequencer mailboxes``: the sending mailboxes, their caps and warm-up."""

from __future__ import annotations

import getpass

import typer
from rich import box
from rich.table import Table

from sequencer.app.cli.common import console, fail, open_session, print_json, settings
from sequencer.core.clock import SystemClock
from sequencer.core.models import Mailbox
from sequencer.deliverability import protection
from sequencer.sending import caps, mailboxes

app = typer.Typer(help="Sending mailboxes: add, list, pause, resume.", no_args_is_help=True)


@app.command()
def add(
    context: typer.Context,
    address: str,
    display_name: str = typer.Option("", help="Name shown in From."),
    owner: str = typer.Option("", help="The SDR who owns it."),
    smtp_host: str = "127.0.0.1",
    smtp_port: int = 25,
    smtp_security: str = typer.Option("none", help="none, starttls or ssl"),
    smtp_username: str = "",
    smtp_password_env: str = typer.Option("", help="Environment variable holding the password."),
    daily_cap: int = 50,
    warmup_start: int = typer.Option(0, help="Day-one cap of the warm-up ramp (0: no ramp)."),
    warmup_increment: int = typer.Option(0, help="Added to the cap each day of warm-up."),
    min_gap_seconds: int = 0,
    gap_jitter_seconds: int = 0,
    imap_host: str = typer.Option("", help="IMAP server polled for replies and bounces (empty: not polled)."),
    imap_port: int = typer.Option(0, help="IMAP port (0: 993 with SSL, else 143)."),
    imap_ssl: bool = typer.Option(True, help="IMAP over TLS (--no-imap-ssl for plain IMAP on a trusted network)."),
    imap_username: str = typer.Option("", help="IMAP login (default: the address)."),
    imap_password_env: str = typer.Option("", help="Environment variable holding the IMAP password (never stored)."),
) -> None:
    """Add or update a mailbox; on an update only the options given change."""
    given = {k: v for k, v in locals().items() if k != "context"}
    # A new mailbox takes the model's defaults (the same as these options' defaults).
    values = {name: value for name, value in given.items()
              if name == "address" or context.get_parameter_source(name).name != "DEFAULT"}
    with open_session() as session:
        try:
            mailbox = mailboxes.upsert(session, values, SystemClock().now().date())
        except mailboxes.MailboxError as exc:
            fail(str(exc))
        session.commit()
    console.print(f"mailbox {mailbox.address} saved (domain {mailbox.sending_domain})")


@app.command()
def sync() -> None:
    """Make the database match the [[mailboxes]] of the config file (adds and updates; removes nothing)."""
    config = settings()
    with open_session(config) as session:
        try:
            boxes = mailboxes.sync_from_settings(session, config, SystemClock().now().date())
        except mailboxes.MailboxError as exc:
            fail(str(exc))
    for mailbox in boxes:
        console.print(f"mailbox {mailbox.address} synced from {config.source}", highlight=False)
    if not boxes:
        console.print(f"no [[mailboxes]] in {config.source}", highlight=False, markup=False)


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="One JSON array, for scripts.")) -> None:
    """Every mailbox with today's use of its cap, its owner and its state."""
    today = SystemClock().now().date()
    items = []
    with open_session() as session:
        for mailbox in session.exec(mailboxes.select(Mailbox).order_by(Mailbox.address)):
            limit, label = caps.mailbox_daily_limit(mailbox, today)
            state = f"paused: {mailbox.pause_reason}" if mailbox.paused else "active"
            if mailbox.relay_failures:
                state += f"; relay down ({mailbox.relay_failures} in a row): {mailbox.relay_error}"
            items.append({"address": mailbox.address, "sending_domain": mailbox.sending_domain,
                          "owner": mailbox.owner, "sent_today": mailboxes.used_today(session, mailbox, today),
                          "cap_today": limit, "cap": label, "state": state})
    if as_json:
        print_json(items)
        return
    if not items:
        console.print("no mailboxes; add one with `sequencer mailboxes add ADDRESS`")
        return
    # Fits 80 columns: the domain is the address's own, "today" folds use and cap into one
    # cell, and the long cells (an address, a pause reason) fold instead of being cut.
    table = Table("address", "owner", "today", "state", box=box.SIMPLE_HEAD, show_edge=False)
    for column in table.columns:  # narrower than the cells: rich shares the room out, cells fold
        column.overflow = "fold"
    for item in items:
        table.add_row(item["address"], item["owner"] or "-", f"{item['sent_today']} of {item['cap']}", item["state"],
                      style=None if item["state"] == "active" else "yellow")
    console.print(table, markup=False, highlight=False)


@app.command()
def pause(address: str, reason: str = typer.Option("paused by hand")) -> None:
    """Stop sending from a mailbox (touches are deferred, not dropped)."""
    with open_session() as session:
        try:
            mailboxes.set_paused(session, address, True, reason)
        except mailboxes.MailboxError as exc:
            fail(str(exc))
    console.print(f"{address} paused")


@app.command()
def resume(
    target: str = typer.Argument(..., help="A mailbox address, or a sending domain paused by protection."),
    by: str = typer.Option("", help="Who resumes it (recorded); default: the login name."),
) -> None:
    """Let a paused mailbox or sending domain send again, recording who did it and when."""
    who = by.strip() or getpass.getuser()
    now = SystemClock().now()
    with open_session() as session:
        try:
            if "@" in target:
                protection.resume_mailbox(session, now, target, who)
            else:
                protection.resume_domain(session, now, target, who)
        except ValueError as exc:  # MailboxError is one
            fail(str(exc))
    console.print(f"{target} resumed by {who} at {now:%Y-%m-%d %H:%M} UTC")
