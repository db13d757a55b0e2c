"""``POST /webhooks/calcom`` and ``POST /webhooks/calendly``: booking tools' deliveries, as they send them.

Mounted open (no API key): a booking tool can be given a URL and a secret, not our keys, and
the signature over the raw body is the proof (``sequencer.meetings.webhooks`` says what is
trusted and why). In order, before anything is stored: the body is read up to
``MAX_BODY`` (a larger one is 413 without being read further), the signature is checked
(401; 503 when no secret is configured), the payload is read (4xx naming the field). Then
the command is applied in one transaction (``sequencer.meetings.deliveries``), committed,
and only then is the calendar invitation sent, so an email never announces a meeting a
rollback took back. A replayed delivery answers 200 with ``"duplicate"`` and sends nothing.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session

from sequencer.app.api import NowDep, SessionDep, SettingsDep
from sequencer.app.wiring import sender_for
from sequencer.core import decisions
from sequencer.core.config import ConfigError, Settings
from sequencer.core.db import is_lock_conflict
from sequencer.meetings import deliveries, invites
from sequencer.meetings.checks import MeetingError
from sequencer.meetings.webhooks import (
    MAX_BODY,
    Command,
    WebhookError,
    check_size,
    read_calcom,
    read_calendly,
    verify_calcom,
    verify_calendly,
)
from sequencer.rules.actions import rulebook

router = APIRouter(tags=["webhooks"])


@router.post("/webhooks/calcom")
async def calcom(request: Request, session: SessionDep, settings: SettingsDep, now: NowDep) -> JSONResponse:
    """A Cal.com delivery, verified with ``X-Cal-Signature-256``."""
    try:
        body = await _bounded_body(request)
        verify_calcom(settings.calcom_webhook_secret, body, request.headers.get("x-cal-signature-256"))
        command = read_calcom(body)
    except WebhookError as exc:
        return _refusal(exc)
    return await run_in_threadpool(_apply, request, session, settings, now, command, body)


@router.post("/webhooks/calendly")
async def calendly(request: Request, session: SessionDep, settings: SettingsDep, now: NowDep) -> JSONResponse:
    """A Calendly delivery, verified with ``Calendly-Webhook-Signature`` (its ``t`` within three minutes)."""
    try:
        body = await _bounded_body(request)
        verify_calendly(settings.calendly_signing_key, body, request.headers.get("calendly-webhook-signature"), now)
        command = read_calendly(body)
    except WebhookError as exc:
        return _refusal(exc)
    return await run_in_threadpool(_apply, request, session, settings, now, command, body)


async def _bounded_body(request: Request) -> bytes:
    """The raw body, refusing one over ``MAX_BODY`` by its Content-Length or as soon as it grows past it."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit():
        check_size(b"" if int(declared) <= MAX_BODY else b"x" * (MAX_BODY + 1))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise WebhookError(413, f"body: larger than {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _refusal(exc: WebhookError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=exc.status)


def _apply(request: Request, session: Session, settings: Settings, now: datetime, command: Command,
           body: bytes) -> JSONResponse:
    rules = rulebook(settings)
    try:
        try:
            outcome = deliveries.apply(session, now, settings, rules, command, body)
            session.commit()
        except (IntegrityError, OperationalError) as exc:
            # Deliveries of one booking are handled one at a time (deliveries._one_at_a_time), but two
            # bookings by one new address at once both create its prospect and account: the unique
            # constraints let the first through, and this one starts again and finds them.
            if isinstance(exc, OperationalError) and not is_lock_conflict(exc):
                raise
            session.rollback()
            outcome = deliveries.apply(session, now, settings, rules, command, body)
            session.commit()
    except WebhookError as exc:
        session.rollback()
        return _refusal(exc)
    answer = outcome.answer()
    if outcome.invite and outcome.meeting is not None:
        sender = getattr(request.app.state, "sender", None) or sender_for(settings)
        try:
            answer["invited"] = invites.deliver(session, now, settings, sender, outcome.meeting, outcome.invite)
        except (MeetingError, ConfigError, OSError) as exc:
            # The meeting is stored and the delivery taken: a failed invitation is recorded and reported,
            # not answered as a failure (the tool would deliver again, and find a duplicate).
            session.rollback()
            answer["invite_error"] = str(exc)
            decisions.record(session, now, deliveries.DECISION, f"{outcome.invite} invitation for meeting "
                             f"#{outcome.meeting.id} not sent: {exc}", prospect_id=outcome.meeting.prospect_id,
                             meeting_id=outcome.meeting.id, invite_error=str(exc))
            session.commit()
        finally:
            if sender is not getattr(request.app.state, "sender", None):
                sender.close()
    return JSONResponse(answer)
