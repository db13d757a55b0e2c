"""Email over SMTP: build the message (threading, unsubscribe headers) and deliver it.

``SmtpSender`` keeps one connection per mailbox open between sends, because opening a
connection (and STARTTLS, and AUTH) per message is what limits throughput in practice.
A send either returns the server's acceptance or raises ``DeliveryError`` carrying the
SMTP code and text so the caller can classify it (hard / soft / block).
"""

from __future__ import annotations

import base64
import contextlib
import html
import os
import re
import secrets
import smtplib
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.charset import QP, Charset
from email.errors import HeaderParseError
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import Compat32
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any, Protocol


class SmtpAccount(Protocol):
    """What the sender reads of a mailbox (the engine passes its ``Mailbox`` row).

    A protocol, not that model, because ``channels`` imports nothing from ``sequencer``.
    """

    id: int | None
    address: str
    display_name: str
    sending_domain: str
    smtp_host: str
    smtp_port: int
    smtp_security: str  # none | starttls | ssl
    smtp_username: str
    smtp_password_env: str  # name of the environment variable holding the password


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


class HeaderTooLong(HeaderParseError):
    """A structured header (an address, an id) that cannot be folded within the line limit."""


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


@dataclass
class OutgoingEmail:
    mailbox: SmtpAccount
    to: str
    subject: str
    text: str
    html: str = ""
    message_id: str = ""
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    envelope_from: str = ""
    date: datetime | None = None
    # An iTIP message (RFC 5546) carried over iMIP (RFC 6047): the iCalendar object and its
    # METHOD (REQUEST, CANCEL, ...). When set, ``build`` writes the calendar layout (``_with_calendar``).
    calendar: bytes = b""
    calendar_method: str = ""


def new_message_id(sending_domain: str) -> str:
    """A globally unique Message-ID on our own sending domain, without angle brackets.

    Ids are stored bare everywhere (touches, threads, inbound matching) and get their
    brackets only when written into a header.
    """
    return make_msgid(domain=sending_domain).strip("<>")


def text_to_html(text: str) -> str:
    """A minimal HTML alternative: escaped paragraphs, line breaks kept."""
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    return "\n".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)


def build(email: OutgoingEmail) -> Message:
    """The MIME message: plain text plus HTML, threading and extra headers.

    Built with the classic (compat32) MIME classes: they produce the same wire format
    as ``EmailMessage`` at a fraction of the cost. ``wire`` writes the same bytes
    directly in the common case.
    """
    if email.calendar:
        return _with_calendar(email, email.html or text_to_html(email.text))
    html_part = email.html or text_to_html(email.text)
    message = MIMEMultipart("alternative", boundary=_boundary(email.text, html_part), _subparts=[
        MIMEText(email.text, "plain", _charset_for(email.text)),
        MIMEText(html_part, "html", _charset_for(html_part)),
    ])
    for name, value in _headers(email):
        message[name] = value
    return message


def wire(email: OutgoingEmail) -> bytes:
    """The message as SMTP DATA: byte for byte what ``build(email).as_bytes(policy=_WIRE)`` is.

    No line of it is longer than ``MAX_LINE`` (RFC 5322 2.1.1): a body with a longer line
    goes quoted-printable, a subject that cannot be folded within the limit goes as
    RFC 2047 encoded words, and any other header that cannot raises ``HeaderTooLong``.
    When both texts are 7-bit-safe ASCII (the common case) the bytes are written directly:
    building and flattening the MIME objects cost more than sending them. Otherwise
    the email package builds them (quoted-printable bodies). A test holds the two equal.
    """
    if email.calendar:  # an invitation: always built by the email package (``_with_calendar``)
        return build(email).as_bytes(policy=_WIRE)
    html_part = email.html or text_to_html(email.text)
    if _charset_for(email.text) is not _ASCII or _charset_for(html_part) is not _ASCII:
        return build(email).as_bytes(policy=_WIRE)
    boundary = _boundary(email.text, html_part)
    headers = [("Content-Type", f'multipart/alternative; boundary="{boundary}"'), ("MIME-Version", "1.0"),
               *_headers(email)]
    return b"".join([
        *(_WIRE.fold_binary(name, value) for name, value in headers),
        f"\r\n--{boundary}\r\n{_ascii_part('plain', email.text)}"
        f"\r\n--{boundary}\r\n{_ascii_part('html', html_part)}"
        f"\r\n--{boundary}--\r\n".encode("ascii"),
    ])


_METHOD = re.compile(r"[A-Z][A-Z-]{0,30}")  # an iTIP method: REQUEST, CANCEL, REPLY, ... (RFC 5546, 1.4)
CALENDAR_FILENAME = "invite.ics"


def _with_calendar(email: OutgoingEmail, html_part: str) -> Message:
    """An invitation in the shape both Outlook and Gmail act on (RFC 6047, 2.4; what Google Calendar sends)::

        multipart/mixed
          multipart/alternative
            text/plain                                    the words, for people
            text/html
            text/calendar; method=REQUEST; charset=UTF-8  the iTIP message a calendar client acts on
          application/ics; name="invite.ics"              the same object as a file, for clients that
                                                          look only at attachments

    The method parameter must equal the object's METHOD (RFC 6047, 2.4): the caller passes both.
    """
    method = email.calendar_method.upper()
    if not _METHOD.fullmatch(method):
        raise ValueError(f"calendar_method: {email.calendar_method!r} is not an iTIP method")
    ics = email.calendar
    inline = Message()
    inline["Content-Type"] = f"text/calendar; method={method}; charset=UTF-8"
    _calendar_payload(inline, ics)
    attached = Message()
    attached["Content-Type"] = f'application/ics; name="{CALENDAR_FILENAME}"'
    attached["Content-Disposition"] = f'attachment; filename="{CALENDAR_FILENAME}"'
    attached["Content-Transfer-Encoding"] = "base64"
    attached.set_payload(base64.encodebytes(ics).decode("ascii"))
    texts = (email.text, html_part, ics.decode("utf-8", "replace"))
    alternative = MIMEMultipart("alternative", boundary=_boundary(*texts), _subparts=[
        MIMEText(email.text, "plain", _charset_for(email.text)),
        MIMEText(html_part, "html", _charset_for(html_part)),
        inline,
    ])
    message = MIMEMultipart("mixed", boundary=_boundary(*texts), _subparts=[alternative, attached])
    for name, value in _headers(email):
        message[name] = value
    return message


def _calendar_payload(part: Message, ics: bytes) -> None:
    """7bit when the object is ASCII (its lines are folded at 75 octets, RFC 5545 3.1), else base64."""
    if ics.isascii():
        part["Content-Transfer-Encoding"] = "7bit"
        part.set_payload(ics.decode("ascii"))
    else:
        part["Content-Transfer-Encoding"] = "base64"
        part.set_payload(base64.encodebytes(ics).decode("ascii"))


def _ascii_part(subtype: str, text: str) -> str:
    return (f'Content-Type: text/{subtype}; charset="us-ascii"\r\nMIME-Version: 1.0\r\n'
            f"Content-Transfer-Encoding: 7bit\r\n\r\n{_LINE_BREAK.sub(chr(13) + chr(10), text)}")


_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # what the generator writes as CRLF


def _headers(email: OutgoingEmail) -> list[tuple[str, str | Header]]:
    """The top-level headers after Content-Type and MIME-Version, in order."""
    mailbox = email.mailbox
    headers: list[tuple[str, str | Header]] = [
        ("From", formataddr((mailbox.display_name, mailbox.address), charset="utf-8")
         if mailbox.display_name else mailbox.address),
        ("To", email.to),
        ("Subject", _unstructured("Subject", email.subject)),
        ("Message-ID", f"<{email.message_id or new_message_id(mailbox.sending_domain)}>"),
    ]
    if email.date is not None:
        headers.append(("Date", format_datetime(email.date)))
    if email.in_reply_to:
        headers.append(("In-Reply-To", f"<{email.in_reply_to}>"))
        headers.append(("References", " ".join(f"<{ref}>" for ref in email.references or [email.in_reply_to])))
    headers.extend(email.headers.items())
    for name, value in headers:
        _check_fits(name, value)
    return headers


MAX_LINE = 998  # RFC 5322 2.1.1: characters a line may have, CRLF excluded
_ENCODED_LINE = 76  # folding encoded words here keeps each within RFC 2047's 75 characters


def _unstructured(name: str, value: str) -> str:
    """An unstructured header's value (the subject) as it goes out.

    ASCII that compat32 folds within ``MAX_LINE`` is left as it is; anything else (other
    text, or a word too long for any line: a long token from prospect data) becomes UTF-8
    RFC 2047 encoded words, folded here, at 76, so that no encoded word is longer than 75
    characters (section 2). The folded value is handed on as text, so ``wire`` and
    ``build`` write it alike. A line break in it becomes folding: it can embed nothing.
    """
    if value.isascii() and _fits(name, value):
        return value
    return Header(value, "utf-8", maxlinelen=_ENCODED_LINE, header_name=name).encode(linesep="\r\n")


def _fits(name: str, value: str | Header) -> bool:
    """Whether ``name: value`` folds without a line over ``MAX_LINE`` (HeaderParseError: it
    would embed another header)."""
    if isinstance(value, str) and _ONE_LINE_ASCII.fullmatch(value) and len(name) + len(value) + 2 <= MAX_LINE:
        return True
    return max(len(line) for line in _WIRE.fold_binary(name, value).split(b"\r\n")) <= MAX_LINE


def _check_fits(name: str, value: str | Header) -> None:
    if not _fits(name, value):
        raise HeaderTooLong(f"the {name} header cannot be folded into lines of at most {MAX_LINE} characters "
                            "(RFC 5322 2.1.1)")


def _boundary(*texts: str) -> str:
    """A part boundary that is in none of the texts.

    Set here because the generator otherwise compiles a fresh regular expression for
    every message to look for its random boundary. "=_" never occurs in quoted-printable
    output, and the 7-bit parts are the texts themselves, so looking in the texts is enough.
    """
    while True:
        boundary = f"=_{secrets.token_hex(16)}"
        if not any(boundary in text for text in texts):
            return boundary


def _charset_for(text: str) -> Charset:
    """us-ascii when it goes as it is: ASCII with no line over ``MAX_LINE``; otherwise UTF-8
    in quoted-printable (readable, 7-bit safe, soft line breaks every 76 characters)."""
    if text.isascii() and not _LONG_LINE.search(text):
        return _ASCII
    return _UTF8_QP


_LONG_LINE = re.compile(r"[^\r\n]{999}")  # a line longer than MAX_LINE


_ONE_LINE_ASCII = re.compile(r"[\x20-\x7e\t]*")


class WirePolicy(Compat32):
    """compat32 for SMTP, writing a one-line ASCII header as it is.

    Folding each header through ``email.header.Header`` cost more than building the
    whole message; for an ASCII value with no line break that fits the line, Header
    gives the value back unchanged (a test holds this against compat32), so the work
    is skipped. Anything else is folded by compat32 as before.
    """

    def _fold(self, name: str, value: Any, sanitize: bool) -> str:
        if (isinstance(value, str) and _ONE_LINE_ASCII.fullmatch(value)
                and len(name) + len(value) + 2 <= self.max_line_length):
            return f"{name}: {value}{self.linesep}"
        return super()._fold(name, value, sanitize)


_WIRE = WirePolicy(linesep="\r\n", max_line_length=998)  # CRLF for SMTP; no folding of URLs
_ASCII = Charset("us-ascii")
_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP


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
