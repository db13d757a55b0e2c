"""``POST /signals``: one signal, or a batch of up to ``MAX_BATCH``, from a form, a CRM, a vendor feed.

A write route, mounted with ``mount_writes`` (an API key with the ``signals`` or ``admin``
scope). The body is one JSON object or a list of them, each with the fields of a line of
``sequencer signals import`` (type, email or domain, occurred_at, source, dedupe_key,
payload; any other key is payload), checked by the same code (``intake.signals``).

A batch is accepted **per item**, not all or nothing: each good item is stored (a repeated
dedupe key is a duplicate of the stored signal, not an error) and each bad one is listed
with its index and the field at fault; a bad item never stops the others or leaves half a
signal. 202 once the good ones are committed, with their ids; 422 when no item is good.

What is trusted: nothing in the body. It is read within ``MAX_BODY`` bytes (refused with
413 as it streams), parsed without NaN or Infinity, and each item is bounded by the signal
checks (64 KB payloads, 8 levels deep). Once stored, the new signals are handed to the
workers (``dispatch``) so they are acted on at once; if that hand-off fails, the tick finds
them in the database: stored before enqueued.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from sequencer.app.api import NowDep, SessionDep
from sequencer.app.api.inbound import _body_within
from sequencer.core.config import ConfigError, Settings
from sequencer.core.yaml_source import SourceError
from sequencer.intake import signals
from sequencer.sequences.signal_types import known_types

log = logging.getLogger(__name__)
router = APIRouter(tags=["signals"])
MAX_BATCH = 1000
MAX_BODY = 16 * 1024 * 1024
"""The largest request body, in bytes (a full batch of small signals is well under a megabyte)."""

_EXAMPLES = {
    "one": {"summary": "One signal about a person", "value": {
        "type": "form_fill", "email": "priya@brightside.example", "form": "demo-request", "first_name": "Priya",
        "dedupe_key": "hubspot:form:8841"}},
    "batch": {"summary": "A batch (up to 1,000): per item", "value": [
        {"type": "funding_round", "domain": "northwind.example", "round": "Series B", "dedupe_key": "cb:nw:b"},
        {"type": "intent_surge", "email": "dana.reyes@northwind.example", "score": 87,
         "occurred_at": "2026-11-30T09:00:00Z"}]},
}
_ITEM = {"type": "object", "required": ["type"], "additionalProperties": True, "properties": {
    "type": {"type": "string", "description": "intent_surge, funding_round, job_change, form_fill, ... "
                                              "or a type the workspace declares"},
    "email": {"type": "string", "description": "the prospect (or give domain)"},
    "domain": {"type": "string", "description": "the account"},
    "occurred_at": {"type": "string", "format": "date-time", "description": "default: now; never in the future"},
    "source": {"type": "string", "description": "default: api"},
    "dedupe_key": {"type": "string", "description": "signals with the same key are one signal"},
    "payload": {"type": "object", "description": "more fields; any other top-level key is payload too"}}}
_OPENAPI = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"oneOf": [_ITEM, {"type": "array", "items": _ITEM, "maxItems": MAX_BATCH}]},
    "examples": _EXAMPLES}}}}
_RESPONSES = {
    202: {"description": "The good items are stored (per item)", "content": {"application/json": {"example": {
        "accepted": [{"index": 0, "id": 41, "duplicate": False}],
        "errors": [{"index": 1, "field": "email", "error": "email: invalid email 'x': no @"}]}}}},
    422: {"description": "No item could be stored; each error names its index and field"},
}


@router.post("/signals", status_code=202, openapi_extra=_OPENAPI, responses=_RESPONSES)
async def post_signals(request: Request, session: SessionDep, now: NowDep) -> JSONResponse:
    """Store one signal or a batch; each item is stored or refused alone."""
    body = await _body_within(request, MAX_BODY)
    items = _items(body)
    result = await run_in_threadpool(_store, session, now, request.app.state.settings, request.app.state, items)
    await run_in_threadpool(dispatch(request.app.state), result.pop("new"))  # after the commit, never before
    return JSONResponse(result, status_code=202 if result["accepted"] else 422)


def _items(body: bytes) -> list[Any]:
    try:
        parsed = json.loads(body, parse_constant=_no_constant)
    except RecursionError:
        raise HTTPException(400, "the body is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, bad UTF-8, NaN/Infinity, a number of thousands of digits
        raise HTTPException(400, f"the body is not valid JSON: {exc}") from None
    if isinstance(parsed, dict):
        return [parsed]
    if not isinstance(parsed, list):
        raise HTTPException(422, "the body must be a signal (a JSON object) or a list of them")
    if not parsed:
        raise HTTPException(422, "the list of signals is empty")
    if len(parsed) > MAX_BATCH:
        raise HTTPException(413, f"a batch of {len(parsed)} signals; at most {MAX_BATCH} per request")
    return parsed


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _store(session: Session, now: datetime, settings: Settings, state: Any, items: list[Any]) -> dict[str, Any]:
    """Check and store ``items``; what was accepted, what was refused (by index), and the new ids."""
    types = _types(settings, state)
    errors: list[dict[str, Any]] = []
    good: list[tuple[int, signals.SignalIn]] = []
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise ValueError(f"signal: must be a JSON object, got {type(item).__name__}")
            good.append((index, signals.SignalIn.from_mapping(item, source="api")))
        except ValueError as exc:
            errors.append(_error(index, exc))
    accepted, new = [], []
    stored = signals.store_many(session, now, [item for _, item in good], types=types)
    for (index, _), result in zip(good, stored, strict=True):
        if isinstance(result, ValueError):
            errors.append(_error(index, result))
            continue
        accepted.append({"index": index, "id": result.id, "duplicate": result.duplicate})
        if not result.duplicate:
            new.append(result.id)
    errors.sort(key=lambda error: error["index"])
    return {"accepted": accepted, "errors": errors, "new": new}


def _error(index: int, exc: ValueError) -> dict[str, Any]:
    message = str(exc)
    field, sep, _ = message.partition(": ")
    return {"index": index, "field": field if sep and len(field) < 120 else "", "error": message}


def _types(settings: Settings, state: Any) -> frozenset[str]:
    """The workspace's signal types, read once per app (an edited signals.yaml needs a restart, as
    edited sequences do for the workers)."""
    if getattr(state, "signal_types", None) is None:
        try:
            state.signal_types = known_types(settings)
        except SourceError as exc:
            raise HTTPException(503, "the declared signal types cannot be read: " + "; ".join(exc.errors)) from exc
    return state.signal_types


def dispatch(state: Any) -> Callable[[list[int]], None]:
    """How this app hands newly stored signals on to be acted on at once (one function per app).

    ``signal_dispatch`` = ``celery`` sends their ids to the workers' ingest task; ``none``
    leaves them to the embedded loop (``sequencer run`` wakes on a new signal) or the
    tick; ``auto`` is celery on PostgreSQL and none on SQLite. A broker that cannot be
    reached loses nothing: the signals are stored, and the tick takes them.
    """
    if getattr(state, "dispatch", None) is None:
        state.dispatch = _choose(state.settings)
    return state.dispatch


def dispatch_mode(settings: Settings) -> str:
    """``celery`` or ``none``: ``signal_dispatch`` with ``auto`` decided by the database."""
    mode = settings.signal_dispatch.strip().lower()
    if mode == "auto":
        return "celery" if settings.database_url.startswith("postgresql") else "none"
    if mode not in ("celery", "none"):
        raise ConfigError(f"signal_dispatch: {settings.signal_dispatch!r} is not one of auto, celery, none")
    return mode


def _choose(settings: Settings) -> Callable[[list[int]], None]:
    if dispatch_mode(settings) == "none":
        return lambda ids: None
    from celery import Celery

    from sequencer.app.celery_app import INGEST_TASK

    client = Celery("sequencer-api", broker=settings.broker_url, set_as_current=False)
    client.conf.update(broker_connection_timeout=2, broker_connection_retry=False, task_serializer="json")

    def send(ids: list[int]) -> None:
        if not ids:
            return
        try:
            client.send_task(INGEST_TASK, args=[ids], retry=False, ignore_result=True)
        except Exception as exc:  # the broker's failure is never the request's: the tick finds the signals
            log.warning("signals %s stored but not handed to the workers (%s); the tick will take them", ids, exc)

    return send
