"""Polling every mailbox's IMAP folder, as a periodic chore of the embedded loop and of beat.

A mailbox's IMAP settings live on its row (``mailboxes add --imap-host ...``, or its
``[[mailboxes]]`` entry, synced by ``mailboxes sync``, ``sequences load`` and at start); a
mailbox without ``imap_host`` on its row falls back to its config entry
(``imap_poll.imap_settings``). The password is never stored: ``imap_password_env`` names
the environment variable that holds it, read here on the host that polls.

``poll_all`` polls each mailbox in turn with ``imap_poll.poll_mailbox`` (which owns the
cursor and its guarantees); one mailbox failing is a line in the report, never a reason to
skip the others. On PostgreSQL one advisory lock makes overlapping polls (a slow poll and
the next beat, two hosts) take turns instead of reading the same folder at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import text
from sqlmodel import Session, select

from sequencer.core.config import Settings
from sequencer.core.models import Mailbox
from sequencer.inbound.imap_poll import (
    ImapConfigError,
    ImapSettings,
    PollError,
    imap_connector,
    imap_settings,
    poll_mailbox,
)
from sequencer.inbound.ingest import ingest_raw, quarantine_raw

POLL_LOCK = 0x5E9_0003  # PostgreSQL advisory lock key held while mailboxes are polled
IMAP_TIMEOUT = 30.0


def imap_of(mailbox: Mailbox, settings: Settings, env: Mapping[str, str] | None = None) -> ImapSettings:
    """The IMAP settings of ``mailbox``: its own columns, else its ``[[mailboxes]]`` entry.

    Raises ``ImapConfigError`` naming the mailbox and the field that is missing.
    """
    if not mailbox.imap_host:
        return imap_settings(mailbox, settings, env)
    env = os.environ if env is None else env
    where = f"mailbox {mailbox.address}"
    if not mailbox.imap_password_env:
        raise ImapConfigError(f"{where}: imap_password_env (the variable holding the password) is required")
    if mailbox.imap_password_env not in env:
        raise ImapConfigError(f"{where}: environment variable {mailbox.imap_password_env} is not set")
    port = mailbox.imap_port or (993 if mailbox.imap_ssl else 143)
    return ImapSettings(mailbox.imap_host, port, mailbox.imap_ssl, mailbox.imap_username or mailbox.address,
                        env[mailbox.imap_password_env])


def pollable(session: Session, settings: Settings) -> list[Mailbox]:
    """The mailboxes with IMAP settings, on their row or in the config."""
    configured = {str(entry.get("address", "")).lower() for entry in settings.mailboxes if entry.get("imap_host")}
    return [box for box in session.exec(select(Mailbox).order_by(Mailbox.address))
            if box.imap_host or box.address in configured]


def poll_all(session: Session, now: Callable[[], datetime], settings: Settings, folder: str = "INBOX",
             env: Mapping[str, str] | None = None) -> list[str]:
    """Poll every mailbox with IMAP settings once; one line per mailbox that read or failed something."""
    lines: list[str] = []
    with _turn(session) as ours:
        if not ours:
            return ["inbound poll: another poll is running; this one skipped"]
        for box in pollable(session, settings):
            def ingest(raw: bytes) -> object:
                return ingest_raw(session, now(), settings, raw)

            def quarantine(raw: bytes, reason: str) -> object:
                return quarantine_raw(session, now(), raw, reason)

            try:
                connect = imap_connector(imap_of(box, settings, env), timeout=IMAP_TIMEOUT)
                result = poll_mailbox(session, box, connect, ingest, quarantine=quarantine, folder=folder)
            except (ImapConfigError, PollError) as exc:
                session.rollback()
                lines.append(f"inbound poll {box.address}: {exc}")
                continue
            if result.fetched or result.failed:
                lines.append(f"inbound poll {box.address}: {result.fetched} fetched, {result.ingested} ingested, "
                             f"{result.failed} failed" + "".join(f"; {error}" for error in result.errors))
    return lines


@contextmanager
def _turn(session: Session) -> Iterator[bool]:
    """Whether this poll may run now: a PostgreSQL advisory lock on its own connection (a
    crashed poller's lock goes with its connection). SQLite serves one host: always."""
    engine = session.get_bind().engine
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as connection:
        got = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": POLL_LOCK}).scalar_one()
        connection.commit()
        try:
            yield bool(got)
        finally:
            if got:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": POLL_LOCK})
                connection.commit()
