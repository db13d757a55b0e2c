"""Turn raw inbound bytes into a ParsedMessage that the classifiers can trust.

Inbound mail is hostile input: truncated, mis-declared charsets, binary junk,
multi-megabyte attachments. Everything here is best effort and total: no function
raises on bad mail, and every decoded string is a real ``str``. Only the first
``MAX_PARSE_BYTES`` of the input are looked at, so a 200 MB message costs the same
as a 10 MB one; the result says when that happened (``truncated``).

The stdlib ``compat32`` policy is used on purpose: the modern policy parses
structured headers eagerly and has raised on malformed headers in the past, while
compat32 keeps raw strings that are decoded here with explicit fallbacks.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email
import email.errors
import email.message
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import ecre as _ENCODED_WORD
from email.quoprimime import header_decode
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from html.parser import HTMLParser

MAX_PARSE_BYTES = 10 * 1024 * 1024
"""Only this many bytes of a message are parsed; the rest is ignored."""

MAX_BODY_CHARS = 256 * 1024
"""The decoded plain-text body is cut to this many characters."""

MAIL_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    LookupError,
    AttributeError,
    email.errors.MessageError,
)
"""What the stdlib email package raises on malformed input (UnicodeError and
binascii.Error are ValueErrors). Caught narrowly so real bugs still surface."""

FALLBACK_CHARSETS = ("utf-8", "cp1252", "latin-1")
"""Tried in order when the declared charset is missing, unknown or wrong.
latin-1 decodes any byte, so the chain always ends with text."""

_ESCAPE_CODECS = frozenset({"unicode-escape", "raw-unicode-escape"})
_SURROGATES = re.compile("[\ud800-\udfff]")
_ESCAPED_BYTES = re.compile("[\udc80-\udcff]+")


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only view of decoded header fields.

    ``headers["subject"]`` gives the first value; ``get_all`` gives every value
    in message order (Received, Delivered-To... repeat).
    """

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs
        self._first: dict[str, str] = {}
        for name, value in pairs:
            self._first.setdefault(name.lower(), value)

    def __getitem__(self, name: str) -> str:
        return self._first[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in the order the fields appear."""
        wanted = name.lower()
        return [value for key, value in self._pairs if key.lower() == wanted]


@dataclass(frozen=True)
class ParsedMessage:
    """What the classifiers need from one inbound message.

    ``message`` is the underlying stdlib object for structural checks (MIME parts of
    a DSN); everything else is already decoded and safe to compare as text.
    ``date`` is aware UTC; ``date_local`` keeps the sender's own offset so that
    "back tomorrow" is counted from the sender's calendar day.
    """

    message: email.message.Message
    headers: Headers
    message_id: str | None
    in_reply_to: str | None
    references: list[str]
    from_address: str | None
    from_name: str
    to_addresses: list[str]
    return_path: str | None
    subject: str
    date: datetime | None
    date_local: datetime | None
    body_text: str
    size: int
    truncated: bool
    defects: list[str] = field(default_factory=list)


_MSGID = re.compile(r"<([^<>\s]{1,500})>")


def decode_header_value(value: object) -> str:
    """Decode raw 8-bit bytes and RFC 2047 encoded words; never raises, always returns text.

    Each encoded word is decoded with its own charset when that really fits, else with
    the fallbacks (an unknown or wrong charset still gives readable text); a space is
    kept between an encoded word and plain text next to it, as ``email.header`` does.
    """
    if value is None:
        return ""
    parts = _ENCODED_WORD.split(unescape_8bit(str(value)))  # text, charset, encoding, encoded, text, ...
    words = [parts[0]]
    for index in range(1, len(parts), 4):
        charset, encoding, encoded, after = parts[index : index + 4]
        if index > 1 and not words[-1].strip():  # whitespace between two encoded words is not text
            words[-1] = ""
        elif words[-1] and not words[-1][-1].isspace():
            words.append(" ")
        words.append(_decode_word(charset, encoding, encoded))
        words.append(after if not after or after[0].isspace() else " " + after)
    return " ".join("".join(words).split())


def _decode_word(charset: str, encoding: str, encoded: str) -> str:
    """One RFC 2047 encoded word's text; a word that does not decode is kept as written."""
    charset = charset.split("*", 1)[0]  # RFC 2231 language suffix: "utf-8*en"
    try:
        if encoding in "qQ":
            data = header_decode(encoded).encode("latin-1")
        else:
            data = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
    except (ValueError, binascii.Error):
        return f"=?{charset}?{encoding}?{encoded}?="
    return decode_bytes(data, charset)


def unescape_8bit(text: str) -> str:
    """Raw 8-bit bytes as text: the stdlib parser keeps them as surrogate escapes
    (U+DC80..U+DCFF), which no database stores; decoded here like a body without a
    charset (UTF-8, else cp1252, else Latin-1). Text without them is returned as is."""
    if not _ESCAPED_BYTES.search(text):
        return text
    try:
        return decode_bytes(text.encode("ascii", "surrogateescape"), None)
    except UnicodeEncodeError:  # real non-ASCII text around the escapes: decode each run of bytes
        return _ESCAPED_BYTES.sub(lambda run: decode_bytes(run.group().encode("utf-8", "surrogateescape"), None),
                                  text)


def message_ids(value: str | None) -> list[str]:
    """The ``<...>`` ids in a Message-ID / In-Reply-To / References value, without
    brackets. A bare id without brackets (seen from broken clients) is kept too."""
    if not value:
        return []
    found = _MSGID.findall(value)
    if found:
        return found
    bare = value.strip()
    return [bare] if bare and " " not in bare and "@" in bare else []


def decode_bytes(payload: bytes, declared: str | None) -> str:
    """Decode with the declared charset if it really fits, else the fallbacks.

    A strict decode with the declared charset is tried first; if it fails (the
    classic case is "utf-8" declared over latin-1 bytes) the fallback chain is used
    instead of replacing characters, so accented words still match keywords.

    A declared charset is the sender's word and not trusted further: an escape codec
    (unicode_escape...) is never used, and a decode that yields surrogates (UTF-7,
    UTF-16 over odd bytes) is rejected like a failed one.
    """
    candidates = [declared] if declared and not _escape_codec(declared) else []
    candidates.extend(FALLBACK_CHARSETS)
    for charset in candidates:
        try:
            text = payload.decode(charset)
        except (LookupError, UnicodeDecodeError, TypeError, ValueError):
            continue
        if not _SURROGATES.search(text):
            return text
    return payload.decode("latin-1", errors="replace")


def _escape_codec(charset: str) -> bool:
    try:
        return codecs.lookup(charset).name in _ESCAPE_CODECS
    except (LookupError, TypeError, ValueError):
        return False


def part_text(part: email.message.Message) -> str:
    """Decoded text of a single non-multipart part (transfer and charset decoding)."""
    try:
        payload = part.get_payload(decode=True)
    except MAIL_ERRORS:
        payload = None
    if payload is None:
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    if not isinstance(payload, bytes):
        return str(payload)
    try:
        charset = part.get_content_charset()
    except MAIL_ERRORS:
        charset = None
    return decode_bytes(payload, charset)


class _HtmlText(HTMLParser):
    """Plain text from HTML, leaving out quoted history (blockquote, gmail_quote)
    and non-content elements, so keyword analysis sees only the new reply."""

    _SKIP = frozenset({"script", "style", "head", "blockquote"})
    _BLOCK = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "table"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._stack: list[bool] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = " ".join(value or "" for name, value in attrs if name in ("class", "id"))
        skip = tag in self._SKIP or "gmail_quote" in classes or "divRplyFwdMsg" in classes
        if tag in self._BLOCK:
            self.chunks.append("\n")
        if tag in ("br", "img", "meta", "hr", "input", "link"):
            return
        self._stack.append(skip)
        self._skipping += skip

    def handle_endtag(self, tag: str) -> None:
        if tag in ("br", "img", "meta", "hr", "input", "link") or not self._stack:
            return
        self._skipping -= self._stack.pop()
        if tag in self._BLOCK:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.chunks.append(data)


def html_to_text(html: str) -> str:
    """Best-effort visible text of an HTML body; never raises."""
    parser = _HtmlText()
    try:
        parser.feed(html)
        parser.close()
    except MAIL_ERRORS:
        return re.sub(r"<[^>]{0,2000}>", " ", html)
    text = "".join(parser.chunks)
    return re.sub(r"\n\s*\n+", "\n\n", text)


def body_text(message: email.message.Message) -> str:
    """The first text/plain part that is not an attachment, else HTML as text.

    Parts inside attached messages (message/rfc822) are skipped: in a DSN or a
    forwarded mail they belong to someone else's message.
    """
    plain: str | None = None
    html: str | None = None
    for part in _own_parts(message):
        ctype = part.get_content_type()
        if "attachment" in str(part.get("Content-Disposition") or "").lower():
            continue
        if ctype == "text/plain" and plain is None:
            plain = part_text(part)
        elif ctype == "text/html" and html is None:
            html = part_text(part)
    if plain is not None and plain.strip():
        text = plain
    elif html is not None:
        text = html_to_text(html)
    else:
        text = plain or ""
    return text.replace("\r\n", "\n")[:MAX_BODY_CHARS]


def _own_parts(message: email.message.Message) -> Iterator[email.message.Message]:
    """Leaf parts of the message, not descending into attached messages."""
    if message.get_content_maintype() == "message":
        return
    if not message.is_multipart():
        yield message
        return
    payload = message.get_payload()
    if not isinstance(payload, list):
        return
    for sub in payload:
        if isinstance(sub, email.message.Message):
            yield from _own_parts(sub)


def _address(value: str | None) -> str | None:
    if not value:
        return None
    _, addr = parseaddr(value)
    return addr.strip().lower() or None


def _parse_date(value: str | None) -> tuple[datetime | None, datetime | None]:
    if not value:
        return None, None
    try:
        local = parsedate_to_datetime(value)
    except MAIL_ERRORS:
        return None, None
    if local is None:
        return None, None
    if local.tzinfo is None:
        local = local.replace(tzinfo=UTC)
    try:
        return local.astimezone(UTC), local
    except (OverflowError, ValueError):
        return None, None


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse raw RFC 5322 bytes; never raises on bad mail.

    Input beyond ``MAX_PARSE_BYTES`` is cut off before parsing and the result is
    flagged ``truncated``. Structural problems the stdlib parser noticed are listed
    in ``defects`` (class names such as ``CloseBoundaryNotFoundDefect``).
    """
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raw = str(raw).encode("utf-8", errors="replace")
    raw = bytes(raw)
    size = len(raw)
    truncated = size > MAX_PARSE_BYTES
    head = raw[:MAX_PARSE_BYTES]
    message = email.message_from_bytes(head)
    pairs: list[tuple[str, str]] = []
    for name, value in message.raw_items():
        pairs.append((str(name), decode_header_value(value)))
    headers = Headers(pairs)
    defects = [type(d).__name__ for d in getattr(message, "defects", [])]
    from_name, from_addr = "", None
    if headers.get("from"):
        from_name, addr = parseaddr(headers["from"])
        from_addr = addr.strip().lower() or None
    to_addresses = [
        addr.strip().lower()
        for _, addr in getaddresses(headers.get_all("to") + headers.get_all("cc"))
        if addr.strip()
    ]
    return_path = None
    if "return-path" in headers:
        rp = headers["return-path"].strip()
        return_path = "" if rp in ("<>", "") else (_address(rp) or rp.strip("<>"))
    ids = message_ids(headers.get("message-id"))
    in_reply_to = message_ids(headers.get("in-reply-to"))
    date, date_local = _parse_date(headers.get("date"))
    try:
        text = body_text(message)
    except MAIL_ERRORS as exc:
        defects.append(f"body: {type(exc).__name__}")
        text = ""
    return ParsedMessage(
        message=message,
        headers=headers,
        message_id=ids[0] if ids else None,
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=message_ids(headers.get("references")),
        from_address=from_addr,
        from_name=from_name,
        to_addresses=to_addresses,
        return_path=return_path,
        subject=headers.get("subject", ""),
        date=date,
        date_local=date_local,
        body_text=text,
        size=size,
        truncated=truncated,
        defects=defects,
    )
