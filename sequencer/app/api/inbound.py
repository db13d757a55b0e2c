"""``POST /inbound``: a raw MIME message in, the way inbound-parse webhooks deliver mail.

Accepts the message as the request body (``message/rfc822`` or any bytes) or as a form
field named ``email``: SendGrid's inbound parse with "POST the raw, full MIME message"
posts multipart/form-data whose ``email`` field is the whole message (their limit is
30 MB). The message is classified, stored once and acted on in the request; the answer
says what was done.

The size limit holds while the body is read: a ``Content-Length`` over it is refused
(413) before a byte of the body is read, and a body without one (chunked) is counted as
it streams and refused as soon as it passes the limit, so no more than the limit is ever
held. The form is parsed from those bytes with python-multipart, keeping the field's
bytes as they were sent (Starlette's ``request.form`` would decode a field to text, and
cap it at ``max_part_size``, 1 MB by default). Parsing, classification and storage run
in the thread pool, so one large message never stalls the server's other requests.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import unquote_to_bytes

from fastapi import APIRouter, HTTPException, Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from sequencer.app.api import NowDep, SessionDep, SettingsDep
from sequencer.core.config import Settings
from sequencer.inbound.ingest import ingest_raw

router = APIRouter()
MAX_BODY = 50 * 1024 * 1024
"""The largest message taken, in bytes."""
FORM_ALLOWANCE = 1024 * 1024
"""What a form may carry besides the message: its other fields and the multipart framing."""
FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")


@router.post("/inbound")
async def inbound(request: Request, session: SessionDep, settings: SettingsDep, now: NowDep) -> dict:
    content_type = request.headers.get("content-type", "")
    is_form = content_type.lower().startswith(FORMS)
    body = await _body_within(request, MAX_BODY + (FORM_ALLOWANCE if is_form else 0))
    raw = await run_in_threadpool(_email_field, body, content_type) if is_form else body
    if raw is None:
        raise HTTPException(400, "form field 'email' with the raw message is missing")
    if not raw:
        raise HTTPException(400, "empty message")
    if len(raw) > MAX_BODY:
        raise HTTPException(413, f"message larger than {MAX_BODY} bytes")
    return await run_in_threadpool(_ingest, session, now, settings, raw)


async def _body_within(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it is known to be over ``limit``.

    The client's Content-Length is trusted only to refuse early: the bytes are counted
    whether or not it was sent, so a body longer than it claims is still cut off.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise HTTPException(400, f"Content-Length is not a number of bytes: {declared!r}")
        if int(declared) > limit:
            raise HTTPException(413, f"request body of {int(declared)} bytes; the limit is {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _email_field(body: bytes, content_type: str) -> bytes | None:
    """The bytes of the form field ``email`` (None when there is none), exactly as sent."""
    kind, params = parse_options_header(content_type)
    if kind == b"application/x-www-form-urlencoded":
        for pair in body.split(b"&"):
            name, _, value = pair.partition(b"=")
            if unquote_to_bytes(name.replace(b"+", b" ")) == b"email":
                return unquote_to_bytes(value.replace(b"+", b" "))
        return None
    boundary = params.get(b"boundary")
    if not boundary:
        raise HTTPException(400, "multipart/form-data without a boundary parameter")
    form = _Fields()
    try:
        parser = MultipartParser(boundary, form.callbacks())
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise HTTPException(400, f"the multipart/form-data body is malformed: {exc}") from exc
    return form.fields.get("email")


class _Fields:
    """Collects each part's bytes by its Content-Disposition name (the first part of a name wins)."""

    def __init__(self) -> None:
        self.fields: dict[str, bytes] = {}
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._name = ""
        self._data = bytearray()

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._begin, "on_header_field": self._field, "on_header_value": self._value,
            "on_header_end": self._header_end, "on_part_data": self._part_data, "on_part_end": self._end,
        }

    def _begin(self) -> None:
        self._name, self._data = "", bytearray()

    def _field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.strip().lower() == b"content-disposition":
            _, options = parse_options_header(bytes(self._header_value))
            self._name = options.get(b"name", b"").decode("latin-1")
        self._header_name, self._header_value = bytearray(), bytearray()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._data += data[start:end]

    def _end(self) -> None:
        self.fields.setdefault(self._name, bytes(self._data))


def _ingest(session: Session, now: datetime, settings: Settings, raw: bytes) -> dict:
    """Store and act on ``raw``, and say what was done (run in the thread pool)."""
    result = ingest_raw(session, now, settings, raw)
    message = result.message
    return {"id": message.id, "kind": message.kind, "duplicate": result.duplicate, "action": result.action,
            "quarantined": message.quarantined, "touch_id": message.touch_id}
