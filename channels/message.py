"""The outgoing email as bytes: the MIME layout, threading and unsubscribe headers, the
calendar parts of an invitation, and the line limits of RFC 5322 they are held to.

Apart from the SMTP delivery (``channels.email``) because it is pure: building a message
needs no connection, so a preview, the sandbox outbox and the sender all share it.
"""

from __future__ import annotations

import base64
import html
import re
import secrets
from dataclasses import dataclass, field
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


class HeaderTooLong(HeaderParseError):
    """A structured header (an address, an id) that cannot be folded within the line limit."""


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
