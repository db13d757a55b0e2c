"""IMAP polling: hand every new message in a mailbox folder to ``ingest`` exactly once.

Progress is the ``InboundCursor`` row (mailbox, folder) -> (UIDVALIDITY, last UID), and
it moves one message at a time, committed right after that message's callback returned.
So a crash re-reads at most the message in flight, and a restart never skips one. The
callback must therefore be idempotent (dedupe by Message-ID is its job, not ours).

A message whose callback raises is counted as failed, its error recorded, and handed to
``quarantine`` (stored for a person with the reason); only once that is stored does the
cursor move past it, so one poisonous message never blocks the mailbox, and none is ever
skipped unstored. When it cannot be quarantined either (or no ``quarantine`` was given),
polling of the folder stops at it, the cursor just before it: the next poll reads it
again. The session is rolled back first, so a half-done ingest never commits alongside
the cursor.

When the server's UIDVALIDITY for the folder changes (the folder was recreated or the
server rebuilt its index), UIDs no longer mean what the cursor remembers, so polling
starts again from UID 1; downstream dedupe makes the re-read harmless.

The folder is opened read-only and bodies are fetched with ``BODY.PEEK[]``: polling never
marks anything as read in the SDR's mailbox.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from imapclient import IMAPClient
from sqlmodel import Session, select

from sequencer.core.config import Settings
from sequencer.core.models import InboundCursor, Mailbox

log = logging.getLogger(__name__)


# Stores a raw message that could not be ingested, with the reason: (raw, reason) -> anything.
Quarantine = Callable[[bytes, str], object]


class ImapConfigError(ValueError):
    """A mailbox's IMAP settings are missing or unusable; the message names the field."""


class PollError(RuntimeError):
    """Talking to the IMAP server failed; messages ingested before it stay ingested."""


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    ssl: bool
    username: str
    password: str = field(repr=False)


@dataclass
class PollResult:
    """What one poll did; ``errors`` holds one line per failed message."""

    fetched: int = 0
    ingested: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    restarted: bool = False  # UIDVALIDITY changed, so the folder was read from the start


def imap_settings(
    mailbox: Mailbox, settings: Settings, env: Mapping[str, str] | None = None
) -> ImapSettings:
    """IMAP connection settings for ``mailbox`` from its ``[[mailboxes]]`` entry.

    Keys: ``imap_host`` (required), ``imap_port`` (993 with SSL, else 143), ``imap_ssl``
    (default true), ``imap_username`` (default: the address), ``imap_password_env``
    (required: the name of the environment variable holding the password, so secrets
    never sit in the config file).
    """
    env = os.environ if env is None else env
    where = f"{settings.source}: mailbox {mailbox.address}"
    entry = next(
        (
            e
            for e in settings.mailboxes
            if str(e.get("address", "")).lower() == mailbox.address.lower()
        ),
        None,
    )
    if entry is None or not entry.get("imap_host"):
        raise ImapConfigError(f"{where}: no imap_host configured")
    host = entry["imap_host"]
    use_ssl = entry.get("imap_ssl", True)
    port = entry.get("imap_port", 993 if use_ssl else 143)
    username = entry.get("imap_username", mailbox.address)
    password_env = entry.get("imap_password_env", "")
    if not isinstance(host, str):
        raise ImapConfigError(f"{where}: imap_host must be text")
    if not isinstance(use_ssl, bool):
        raise ImapConfigError(f"{where}: imap_ssl must be true or false")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ImapConfigError(f"{where}: imap_port must be a port number, got {port!r}")
    if not isinstance(username, str) or not username:
        raise ImapConfigError(f"{where}: imap_username must be text")
    if not isinstance(password_env, str) or not password_env:
        raise ImapConfigError(
            f"{where}: imap_password_env (the variable holding the password) is required"
        )
    if password_env not in env:
        raise ImapConfigError(f"{where}: environment variable {password_env} is not set")
    return ImapSettings(host, port, use_ssl, username, env[password_env])


def imap_connector(imap: ImapSettings, timeout: float = 30.0) -> Callable[[], IMAPClient]:
    """A ``connect`` callable for ``poll_mailbox`` that opens and logs in to the server."""

    def connect() -> IMAPClient:
        client = IMAPClient(imap.host, port=imap.port, ssl=imap.ssl, timeout=timeout)
        try:
            client.login(imap.username, imap.password)
        except Exception:
            client.shutdown()
            raise
        return client

    return connect


def poll_mailbox(
    session: Session,
    mailbox: Mailbox,
    connect: Callable[[], IMAPClient],
    ingest: Callable[[bytes], object],
    *,
    quarantine: Quarantine | None = None,
    folder: str = "INBOX",
    batch: int = 100,
) -> PollResult:
    """Feed every message after the stored cursor to ``ingest``, oldest first.

    ``quarantine(raw, reason)`` stores a message whose ``ingest`` raised; without it, or
    when it raises too, polling stops at that message (see the module's docstring).
    ``connect`` returns a logged-in client. Bodies are fetched ``batch`` at a time so a
    large backlog does not sit in memory; all new messages are processed in one call.
    IMAP and network failures raise ``PollError``; what was ingested before stays, and
    the next poll resumes there.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    if mailbox.id is None:
        raise ValueError("mailbox must be stored before it can be polled")
    result = PollResult()
    try:
        client = connect()
    except Exception as exc:
        raise PollError(f"{mailbox.address}: cannot connect to IMAP: {exc}") from exc
    try:
        _poll(session, mailbox.id, client, ingest, quarantine, folder, batch, result)
    except (IMAPClient.Error, IMAPClient.AbortError, OSError) as exc:
        raise PollError(f"{mailbox.address}/{folder}: IMAP failed: {exc}") from exc
    finally:
        _close(client)
    return result


def _poll(
    session: Session,
    mailbox_id: int,
    client: IMAPClient,
    ingest: Callable[[bytes], object],
    quarantine: Quarantine | None,
    folder: str,
    batch: int,
    result: PollResult,
) -> None:
    status = client.select_folder(folder, readonly=True)
    uidvalidity = int(status[b"UIDVALIDITY"])
    cursor = _cursor(session, mailbox_id, folder)
    if cursor.uidvalidity != uidvalidity:
        result.restarted = cursor.uidvalidity != 0
        if result.restarted:
            log.warning(
                "%s: UIDVALIDITY changed %s -> %s; reading from the start",
                folder,
                cursor.uidvalidity,
                uidvalidity,
            )
        cursor.uidvalidity = uidvalidity
        cursor.last_uid = 0
        session.add(cursor)
        session.commit()
    # "N:*" always matches the highest UID, even when it is below N: filter it out
    uids = sorted(
        uid for uid in client.search(["UID", f"{cursor.last_uid + 1}:*"]) if uid > cursor.last_uid
    )
    for start in range(0, len(uids), batch):
        chunk = uids[start : start + batch]
        bodies: dict[int, Any] = client.fetch(chunk, ["BODY.PEEK[]"])
        for uid in chunk:
            raw = bodies.get(uid, {}).get(b"BODY[]")
            if raw is not None:  # None: expunged since the search; nothing left to read
                result.fetched += 1
                if not _ingest_one(session, ingest, quarantine, uid, raw, result):
                    return  # neither ingested nor quarantined: the cursor stays before it
            cursor.last_uid = uid
            session.add(cursor)
            session.commit()


def _ingest_one(
    session: Session,
    ingest: Callable[[bytes], object],
    quarantine: Quarantine | None,
    uid: int,
    raw: bytes,
    result: PollResult,
) -> bool:
    """Ingest one message, or quarantine it when that raises; False when neither was stored."""
    try:
        ingest(raw)
    except Exception as exc:  # one bad message must not stop the others
        session.rollback()
        result.failed += 1
        error = f"UID {uid}: {type(exc).__name__}: {exc}"
        log.exception("ingest failed for UID %s", uid)
    else:
        result.ingested += 1
        return True
    try:
        if quarantine is None:
            raise RuntimeError("no quarantine to keep it in")
        quarantine(raw, f"ingest failed while polling (UID {uid}): {error.partition(': ')[2]}")
    except Exception as exc:
        session.rollback()
        result.errors.append(f"{error}; not quarantined ({type(exc).__name__}: {exc}): polling stopped at it, "
                             "the next poll reads it again")
        log.exception("quarantine failed for UID %s", uid)
        return False
    result.errors.append(f"{error} (quarantined)")
    return True


def _cursor(session: Session, mailbox_id: int, folder: str) -> InboundCursor:
    cursor = session.exec(
        select(InboundCursor).where(
            InboundCursor.mailbox_id == mailbox_id, InboundCursor.folder == folder
        )
    ).first()
    return cursor or InboundCursor(mailbox_id=mailbox_id, folder=folder)


def _close(client: IMAPClient) -> None:
    """Log out politely; a connection that is already broken is simply dropped."""
    try:
        client.logout()
    except (IMAPClient.Error, IMAPClient.AbortError, OSError):
        try:
            client.shutdown()
        except OSError:
            log.debug("IMAP connection already closed", exc_info=True)
