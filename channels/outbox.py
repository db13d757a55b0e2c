"""The sandbox's delivery: every email into a local Maildir the SDR can open, none to the Internet.

``OutboxSender`` has ``SmtpSender``'s interface (``send``, ``send_many``, ``close``), so the
engine runs exactly as it would for real (suppression, windows, caps, rotation, threading,
the touch record) and only the last hop differs. Each message is the byte-for-byte SMTP
DATA ``channels.message.wire`` builds, with ``X-Sequencer-Sandbox: 1`` added and the subject
unchanged, preceded by the ``Return-Path`` and ``Delivered-To`` lines a delivery agent would
write. Any mail client reads a Maildir (``mutt -f outbox``, Thunderbird, Python's
``mailbox.Maildir``).

Written like a mail server writes its queue: into ``tmp/`` first, flushed and fsynced, then
renamed into ``new/`` (atomic within one file system), so a reader never sees half a
message and a message the engine records as sent is on disk.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from email.errors import HeaderParseError
from pathlib import Path

from channels.email import DeliveryError, NotAttempted, UnsendableMessage
from channels.message import HeaderTooLong, OutgoingEmail, new_message_id, wire

SANDBOX_HEADER = "X-Sequencer-Sandbox"


class OutboxSender:
    """Delivers messages into the Maildir at ``path`` (created with ``cur``, ``new``, ``tmp``)."""

    sandbox = True  # what the shells read to mark their output as sandbox sends

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        for sub in ("tmp", "new", "cur"):
            (self.path / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")

    def send_many(self, emails: list[OutgoingEmail], deadline: float | None = None,
                  on_start: Callable[[list[OutgoingEmail]], object] | None = None,
                  start_chunk: int = 1) -> list[DeliveryError | None]:
        """Deliver every message; return, in order, each one's refusal or None when stored.

        ``SmtpSender``'s interface, kept whole: ``on_start`` is called before a message no earlier call
        covered is stored, with it and up to ``start_chunk - 1`` of the next ones (the engine marks them
        "sending" there, so a crash leaves them unknown, never resent); when it raises, the messages it
        did not cover are not tried. ``deadline`` is accepted; a local write does not wait on anyone.
        """
        errors: list[DeliveryError | None] = []
        covered = 0
        for index, email in enumerate(emails):
            if on_start is not None and index >= covered:
                chunk = emails[index:index + max(1, start_chunk)]
                try:
                    on_start(chunk)
                except Exception as exc:  # the caller could not note the start: do not store what it cannot account for
                    errors.extend(NotAttempted(f"not tried: {exc}") for _ in emails[index:])
                    return errors
                covered = index + len(chunk)
            try:
                self.send(email)
            except DeliveryError as exc:
                errors.append(exc)
            else:
                errors.append(None)
        return errors

    def send(self, email: OutgoingEmail) -> str:
        """Store one message; return its Message-ID. A message SMTP would refuse to build is refused here too."""
        if not email.message_id:
            email = replace(email, message_id=new_message_id(email.mailbox.sending_domain))
        marked = replace(email, headers={**email.headers, SANDBOX_HEADER: "1"})
        try:
            data = wire(marked)
        except HeaderTooLong as exc:
            raise UnsendableMessage(f"message not sent: {exc}") from exc
        except HeaderParseError as exc:
            raise UnsendableMessage(f"message not sent, a header is unsafe: {exc}") from exc
        envelope_from = email.envelope_from or email.mailbox.address
        trace = f"Return-Path: <{envelope_from}>\r\nDelivered-To: {email.to}\r\n".encode("utf-8", "replace")
        try:
            self._store(trace + data)
        except OSError as exc:  # a full disk or a removed folder: nothing was stored, so try again later
            raise DeliveryError(0, f"sandbox outbox {self.path}: {exc}", permanent=False) from exc
        return email.message_id

    def _store(self, data: bytes) -> Path:
        with self._lock:
            name = f"{time.time_ns() // 1000}.P{os.getpid()}Q{next(self._counter)}.{self._host}"
        temporary = self.path / "tmp" / name
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            final = self.path / "new" / name
            os.rename(temporary, final)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        directory = os.open(self.path / "new", os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)
        return final

    def close(self) -> None:
        """Nothing is held open between messages."""
