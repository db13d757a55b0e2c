"""Email over SMTP: deliver the message ``channels.message`` builds.

``SmtpSender`` keeps one connection per mailbox open between sends, because opening a
connection (and STARTTLS, and AUTH) per message is what limits throughput in practice.
A send either returns the server's acceptance or raises ``DeliveryError`` carrying the
SMTP code and text so the caller can classify it (hard / soft / block).
"""

from __future__ import annotations

import contextlib
import os
import re
import smtplib
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from email.errors import HeaderParseError

from channels.message import HeaderTooLong, OutgoingEmail, SmtpAccount, new_message_id, wire


class DeliveryError(Exception):
    """The message was not accepted. ``code`` is the SMTP reply code (0: no reply at all)."""

    def __init__(self, code: int, message: str, *, permanent: bool) -> None:
        super().__init__(f"{code} {message}".strip() if code else message)
        self.code = code
        self.message = message
        self.permanent = permanent


class UnsendableMessage(DeliveryError):
    """The message was refused here, before any server saw it (a header that would embed
    another, an address the server cannot take): a person must fix it; no retry can."""

    def __init__(self, message: str) -> None:
        super().__init__(0, message, permanent=True)


class RelayUnreachable(DeliveryError):
    """The mailbox's relay could not be reached, or hung up before taking any recipient: its
    failure, not the message's. Nothing of the message went out; the batch is tried again soon."""

    def __init__(self, message: str) -> None:
        super().__init__(0, message, permanent=False)


class NotAttempted(DeliveryError):
    """The message was never tried (its relay failed earlier in the batch, or the batch's time
    ran out): nothing went out and nothing about it is known."""

    def __init__(self, message: str) -> None:
        super().__init__(0, message, permanent=False)


class DeliveryUnknown(DeliveryError):
    """The whole message went out but the server's verdict never came back: it may have
    been delivered, so it must never be sent again."""

    def __init__(self, message: str) -> None:
        super().__init__(0, message, permanent=True)


class SmtpSender:
    """Delivers messages over SMTP, reusing one connection per mailbox.

    ``send_many`` sends for several mailboxes at once, one thread per mailbox (at most
    ``threads``), each over its own connection: while one waits for its server's reply
    another builds its next message.
    """

    def __init__(self, timeout: float = 30.0, env: dict[str, str] | None = None, threads: int = 8) -> None:
        self.timeout = timeout
        self.env = os.environ if env is None else env
        self.threads = threads
        self._connections: dict[int, smtplib.SMTP] = {}
        self._pool: ThreadPoolExecutor | None = None

    def send_many(self, emails: list[OutgoingEmail], deadline: float | None = None,
                  on_start: Callable[[list[OutgoingEmail]], object] | None = None,
                  start_chunk: int = 1) -> list[DeliveryError | None]:
        """Deliver every message; return, in order, each one's refusal or None when accepted.

        Messages from one mailbox go out in their order over its one connection. Once its
        relay is unreachable the mailbox's other messages are not tried (``NotAttempted``):
        one outage costs one connect timeout, not one per message. No message is started
        after ``deadline`` (``time.monotonic()``): the caller's send lease stays a bound.
        ``on_start(emails)`` is called, in the sending thread, before a message is started
        that no earlier call covered, with it and up to ``start_chunk - 1`` of its mailbox's
        next ones; when it raises, that message is not tried (the caller could not note it).
        """
        errors: list[DeliveryError | None] = [None] * len(emails)
        groups: dict[int, list[int]] = {}
        for index, email in enumerate(emails):
            groups.setdefault(email.mailbox.id, []).append(index)

        def deliver(indexes: list[int]) -> None:
            down: RelayUnreachable | None = None
            noted = 0  # how many of this mailbox's messages on_start was told of
            for position, index in enumerate(indexes):
                if down is not None:
                    errors[index] = NotAttempted(f"not tried: {down}")
                    continue
                if deadline is not None and time.monotonic() >= deadline:
                    errors[index] = NotAttempted("not tried: the batch's send time ran out")
                    continue
                if on_start is not None and position >= noted:
                    ahead = indexes[position:position + max(start_chunk, 1)]
                    try:
                        on_start([emails[i] for i in ahead])
                    except Exception as exc:  # the caller's own failure: the message must not go unnoted
                        errors[index] = NotAttempted(f"not tried: {exc}")
                        continue
                    noted = position + len(ahead)
                try:
                    self.send(emails[index])
                except RelayUnreachable as exc:
                    errors[index] = down = exc
                except DeliveryError as exc:
                    errors[index] = exc

        if len(groups) <= 1 or self.threads <= 1:
            for indexes in groups.values():
                deliver(indexes)
            return errors
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="smtp")
        for done in [self._pool.submit(deliver, indexes) for indexes in groups.values()]:
            done.result()  # an unexpected error is raised here, after every thread has finished
        return errors

    def send(self, email: OutgoingEmail) -> str:
        """Deliver one message; return its Message-ID once the server accepted it."""
        if not email.message_id:
            email = replace(email, message_id=new_message_id(email.mailbox.sending_domain))
        try:
            data = wire(email)
        except HeaderTooLong as exc:
            raise UnsendableMessage(f"message not sent: {exc}") from exc
        except HeaderParseError as exc:  # a header value that would smuggle in another header
            raise UnsendableMessage(f"message not sent, a header is unsafe: {exc}") from exc
        envelope_from = email.envelope_from or email.mailbox.address
        for attempt in (1, 2):
            reused = email.mailbox.id in self._connections
            connection = self._connection(email.mailbox)
            try:
                _transfer(connection, envelope_from, email.to, data)
            except smtplib.SMTPSenderRefused as exc:
                self._drop(email.mailbox)
                if exc.smtp_code == 421 and reused and attempt == 1:
                    continue  # the server had timed the kept-alive connection out: "421", then it closed
                raise DeliveryError(exc.smtp_code, _text(exc.smtp_error), permanent=exc.smtp_code >= 500) from exc
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = next(iter(exc.recipients.values()))
                raise DeliveryError(code, _text(text), permanent=code >= 500) from exc
            except smtplib.SMTPResponseException as exc:
                self._drop(email.mailbox)
                raise DeliveryError(exc.smtp_code, _text(exc.smtp_error), permanent=exc.smtp_code >= 500) from exc
            except _BodySent as exc:
                self._drop(email.mailbox)
                raise DeliveryUnknown(f"no reply after the message was sent ({exc.__cause__}); "
                                      "not resent so the prospect is never mailed twice") from exc
            except (smtplib.SMTPServerDisconnected, ConnectionError, OSError) as exc:
                self._drop(email.mailbox)
                if attempt == 2:  # before any recipient was taken: nothing of the message went out
                    raise RelayUnreachable(f"connection failed: {exc}") from exc
                continue  # a kept-alive connection the server closed, before any of the message went
            return email.message_id
        raise AssertionError("unreachable")

    def _connection(self, mailbox: SmtpAccount) -> smtplib.SMTP:
        connection = self._connections.get(mailbox.id)
        if connection is not None:
            return connection
        password = ""
        if mailbox.smtp_username:
            password = self.env.get(mailbox.smtp_password_env, "") if mailbox.smtp_password_env else ""
            if not password:  # never log in with an empty password: say what is missing instead
                where = (f"environment variable {mailbox.smtp_password_env} is not set"
                         if mailbox.smtp_password_env else "smtp_password_env is not configured")
                raise DeliveryError(0, f"no SMTP password for {mailbox.smtp_username}: {where}", permanent=False)
        # Certificates are verified against the system CAs (ssl.create_default_context();
        # OpenSSL honours SSL_CERT_FILE / SSL_CERT_DIR for a private CA). STARTTLS that the
        # server does not offer raises: there is no fall-back to plain text.
        connection = None
        try:
            if mailbox.smtp_security == "ssl":
                connection = smtplib.SMTP_SSL(mailbox.smtp_host, mailbox.smtp_port, timeout=self.timeout,
                                              context=ssl.create_default_context())
            else:
                connection = smtplib.SMTP(mailbox.smtp_host, mailbox.smtp_port, timeout=self.timeout)
                if mailbox.smtp_security == "starttls":
                    connection.starttls(context=ssl.create_default_context())
            if mailbox.smtp_username:
                connection.login(mailbox.smtp_username, password)
        except (smtplib.SMTPException, OSError) as exc:
            if connection is not None:  # a half-set-up connection is never kept nor left open
                connection.close()
            if isinstance(exc, smtplib.SMTPAuthenticationError):
                raise DeliveryError(exc.smtp_code, f"authentication failed: {_text(exc.smtp_error)}",
                                    permanent=False) from exc
            raise RelayUnreachable(f"cannot connect to {mailbox.smtp_host}:{mailbox.smtp_port}: {exc}") from exc
        self._connections[mailbox.id] = connection
        return connection

    def _drop(self, mailbox: SmtpAccount) -> None:
        connection = self._connections.pop(mailbox.id, None)
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        for mailbox_id in list(self._connections):
            connection = self._connections.pop(mailbox_id)
            try:
                connection.quit()
            except (smtplib.SMTPException, OSError):
                connection.close()


def _transfer(connection: smtplib.SMTP, sender: str, recipient: str, data: bytes) -> None:
    """One message over ``connection``: MAIL, RCPT, DATA, then the message itself.

    A refusal raises what ``smtplib.SMTP.sendmail`` raises. When the server offers
    PIPELINING (RFC 2920) the three commands go out in one write and their replies are
    read together: two round trips per message instead of four, which is most of the time
    a send takes, on loopback as on a distant relay. A failure after the message itself
    was written raises ``_BodySent``: the server may have taken it.
    """
    connection.ehlo_or_helo_if_needed()
    options = f" SIZE={len(data)}" if connection.has_extn("size") else ""
    if not (sender.isascii() and recipient.isascii()):
        if not connection.has_extn("smtputf8"):
            address = sender if not sender.isascii() else recipient
            raise UnsendableMessage(f"{address}: a non-ASCII address needs SMTPUTF8, which the server does not offer")
        options += " SMTPUTF8"
        connection.command_encoding = "utf-8"
    commands = [f"MAIL FROM:{smtplib.quoteaddr(sender)}{options}", f"RCPT TO:{smtplib.quoteaddr(recipient)}", "DATA"]
    pipelined = connection.has_extn("pipelining")
    if pipelined:
        connection.send("".join(f"{command}\r\n" for command in commands))
    replies: list[tuple[int, bytes]] = []
    try:
        for command in commands:
            if not pipelined:
                connection.send(f"{command}\r\n")
            replies.append(connection.getreply())
            if not pipelined and not _accepted(len(replies) - 1, replies[-1][0]):
                break  # one at a time: nothing more after a refusal
    except smtplib.SMTPServerDisconnected:
        _raise_refusal(replies, sender, recipient)  # a refusal read before the hang-up (a 421) stands
        raise
    if len(replies) < 3 or not all(_accepted(index, code) for index, (code, _) in enumerate(replies)):
        try:
            if replies[-1][0] == 354:  # DATA accepted after a refusal: end it empty (RFC 2920, 3.1)
                connection.send(b".\r\n")
                connection.getreply()
            connection.rset()
        except smtplib.SMTPServerDisconnected:
            pass  # it hung up; the refusal stands
        _raise_refusal(replies, sender, recipient)
    body = _LEADING_DOT.sub(b"..", data)
    try:
        connection.send(body + (b".\r\n" if body.endswith(b"\r\n") else b"\r\n.\r\n"))
        code, text = connection.getreply()
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        raise _BodySent from exc
    if code != 250:
        raise smtplib.SMTPDataError(code, text)


def _accepted(index: int, code: int) -> bool:
    """Whether ``code`` accepts command ``index`` of MAIL, RCPT, DATA."""
    return code in ((250,), (250, 251), (354,))[index]


def _raise_refusal(replies: list[tuple[int, bytes]], sender: str, recipient: str) -> None:
    """Raise what ``sendmail`` raises for the first refused reply, if there is one."""
    for index, (code, text) in enumerate(replies):
        if not _accepted(index, code):
            if index == 0:
                raise smtplib.SMTPSenderRefused(code, text, sender)
            if index == 1:
                raise smtplib.SMTPRecipientsRefused({recipient: (code, text)})
            raise smtplib.SMTPDataError(code, text)


class _BodySent(Exception):
    """The connection failed after the message itself was written (the cause says how)."""


_LEADING_DOT = re.compile(rb"(?m)^\.")  # dot-stuffing: a line that starts with "." gets another


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
