"""``POST /prospects`` (one or a batch), ``GET /prospects/{email}`` and ``GET /prospects/{email}/explain``.

Mounted with ``mount_writes`` (an API key with the ``admin`` scope), reads included: a
prospect is personal data. ``POST`` takes one JSON object or a list of up to
``MAX_BATCH``, with the fields ``prospects import`` maps columns to (``FIELDS``:
email, first_name, ..., company, domain, timezone, country, region) and ``custom`` for
custom fields; an unknown key is refused naming it, so a typo is not dropped silently.
Stored by ``intake.prospects.upsert_rows``, the import's own code: created or updated by
email, per item (a bad item is listed with its index and field; the others are stored).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from sequencer.app.api import NowDep, SessionDep
from sequencer.app.api.inbound import _body_within
from sequencer.core.models import Account, Prospect
from sequencer.engine.explain import as_data, explain
from sequencer.intake.prospect_values import FIELDS
from sequencer.intake.prospects import ProspectRow, as_dict, upsert_rows
from suppression.normalize import normalize_email

router = APIRouter(tags=["prospects"])
MAX_BATCH = 1000
MAX_BODY = 8 * 1024 * 1024
_KEYS = frozenset(FIELDS) | {"custom"}

_EXAMPLES = {
    "one": {"summary": "One prospect", "value": {
        "email": "dana.reyes@northwind.example", "first_name": "Dana", "last_name": "Reyes",
        "title": "VP Sales", "company": "Northwind", "employees": "1,200", "country": "US", "region": "California",
        "custom": {"crm_id": "0035e00000AbC"}}},
    "batch": {"summary": "A batch (up to 1,000): per item", "value": [
        {"email": "lee@fabrikam.example", "first_name": "Lee", "timezone": "Europe/Berlin"},
        {"email": "sam@contoso.example", "first_name": "Sam", "country": "Germany"}]},
}
_ITEM = {"type": "object", "required": ["email"], "additionalProperties": False,
         "properties": {**{name: {"type": "string"} for name in FIELDS}, "custom": {"type": "object"}}}
_OPENAPI = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"oneOf": [_ITEM, {"type": "array", "items": _ITEM, "maxItems": MAX_BATCH}]},
    "examples": _EXAMPLES}}}}


@router.post("/prospects", openapi_extra=_OPENAPI, responses={
    200: {"description": "The good items are stored (created or updated by email)"},
    422: {"description": "No item could be stored; each error names its index and field"}})
async def post_prospects(request: Request, session: SessionDep, now: NowDep) -> JSONResponse:
    """Create or update one prospect or a batch, each item alone."""
    items = _items(await _body_within(request, MAX_BODY))
    result = await run_in_threadpool(_store, session, now, items)
    return JSONResponse(result, status_code=200 if result["stored"] else 422)


def _items(body: bytes) -> list[Any]:
    try:
        parsed = json.loads(body, parse_constant=_no_constant)
    except RecursionError:
        raise HTTPException(400, "the body is nested too deeply") from None
    except ValueError as exc:
        raise HTTPException(400, f"the body is not valid JSON: {exc}") from None
    items = [parsed] if isinstance(parsed, dict) else parsed
    if not isinstance(items, list) or not items:
        raise HTTPException(422, "the body must be a prospect (a JSON object) or a non-empty list of them")
    if len(items) > MAX_BATCH:
        raise HTTPException(413, f"a batch of {len(items)} prospects; at most {MAX_BATCH} per request")
    return items


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _store(session: Session, now, items: list[Any]) -> dict[str, Any]:
    errors: list[dict[str, Any]] = []
    rows: dict[int, ProspectRow] = {}
    for index, item in enumerate(items):
        problem = _problem(item)
        if problem:
            errors.append({"index": index, **problem})
            continue
        values = {key: value for key, value in item.items() if key != "custom"}
        rows[index] = ProspectRow(f"prospects[{index}]", values, dict(item.get("custom") or {}))
    report = upsert_rows(session, now, rows.values())
    refused = {_index(message): message for message in report.errors}
    for index, message in refused.items():
        rest = message.partition(": ")[2]
        field, sep, _ = rest.partition(": ")
        errors.append({"index": index, "field": field if sep else "", "error": rest})
    accepted = _ids(session, [(index, row.values.get("email")) for index, row in rows.items() if index not in refused])
    errors.sort(key=lambda error: error["index"])
    return {"stored": report.stored, "created": report.created, "accepted": accepted, "errors": errors,
            "warnings": report.warnings}


def _problem(item: Any) -> dict[str, str] | None:
    if not isinstance(item, dict):
        return {"field": "", "error": f"a prospect must be a JSON object, got {type(item).__name__}"}
    unknown = sorted(str(key)[:60] for key in item if key not in _KEYS)
    if unknown:
        return {"field": unknown[0], "error": f"{unknown[0]}: unknown field (known: {', '.join(sorted(_KEYS))})"}
    if not isinstance(item.get("custom") or {}, dict):
        return {"field": "custom", "error": "custom: must be an object of custom fields"}
    for key, value in item.items():
        if key != "custom" and value is not None and not isinstance(value, str | int | float):
            return {"field": key, "error": f"{key}: must be text or a number"}
    return None


def _index(message: str) -> int:
    """The item index in ``upsert_rows``' message "prospects[3]: field: why"."""
    where = message.partition(": ")[0]
    return int(where[len("prospects["):-1]) if where.startswith("prospects[") and where.endswith("]") else -1


def _ids(session: Session, pairs: list[tuple[int, Any]]) -> list[dict[str, Any]]:
    """The stored prospects' ids for the accepted items, by their normalised address."""
    wanted: dict[str, list[int]] = {}
    for index, raw in pairs:
        try:
            wanted.setdefault(normalize_email(str(raw).split(";")[0].split(",")[0]), []).append(index)
        except ValueError:
            continue
    found = dict(session.exec(select(Prospect.email, Prospect.id).where(Prospect.email.in_(list(wanted)))).all()
                 ) if wanted else {}
    return sorted(({"index": index, "id": found[email], "email": email}
                   for email, indexes in wanted.items() if email in found for index in indexes),
                  key=lambda item: item["index"])


@router.get("/prospects/{email}")
def get_prospect(email: str, session: SessionDep) -> dict:
    """The prospect with this address, with its account and custom fields."""
    prospect = _prospect(session, email)
    account = session.get(Account, prospect.account_id) if prospect.account_id else None
    return as_dict(prospect, account)


@router.get("/prospects/{email}/explain")
def explain_prospect(email: str, session: SessionDep) -> dict:
    """``sequencer explain`` as JSON: per enrollment and step, sent at, blocked because, waiting for, stopped by."""
    story = explain(session, _prospect(session, email).email)
    return as_data(story)


def _prospect(session: Session, email: str) -> Prospect:
    prospect = session.exec(select(Prospect).where(Prospect.email == email.strip().lower()[:320])).first()
    if prospect is None:
        raise HTTPException(404, f"no prospect {email[:320]!r}")
    return prospect
