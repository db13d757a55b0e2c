"""``POST /inbound``: a raw MIME message in, the way inbound-parse webhooks deliver mail.

Accepts the message as the request body (``message/rfc822`` or any bytes) or as a form
field named ``email`` (the shape SendGrid-style inbound parse uses). The message is
classified, stored once and acted on in the request; the answer says what was done.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from sequencer.app.api import NowDep, SessionDep, SettingsDep
from sequencer.inbound.ingest import ingest_raw

router = APIRouter()
MAX_BODY = 50 * 1024 * 1024


@router.post("/inbound")
async def inbound(request: Request, session: SessionDep, settings: SettingsDep, now: NowDep) -> dict:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        form = await request.form()
        field = form.get("email")
        if field is None:
            raise HTTPException(400, "form field 'email' with the raw message is missing")
        raw = field.encode("utf-8", "surrogateescape") if isinstance(field, str) else await field.read()
    else:
        raw = await request.body()
    if not raw:
        raise HTTPException(400, "empty message")
    if len(raw) > MAX_BODY:
        raise HTTPException(413, f"message larger than {MAX_BODY} bytes")
    result = ingest_raw(session, now, settings, raw)
    message = result.message
    return {"id": message.id, "kind": message.kind, "duplicate": result.duplicate, "action": result.action,
            "quarantined": message.quarantined, "touch_id": message.touch_id}
