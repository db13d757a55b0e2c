"""``GET /reports/deliverability`` and ``GET /reports/pipeline``: the reports over HTTP.

Mounted with ``mount_writes`` although they only read: a report names every mailbox, its
bounce diagnostics and the team's meeting figures, which are not for the open internet,
so an API key (scope ``admin``) is required like for every write. Query parameters are
the CLI's options (``since``, ``until``, ``mailbox``, ``domain``, ``format``); a bad one is
400 naming it. ``format=html`` is the self-contained page (charts inlined), ``json`` the
versioned document, ``csv`` the long table.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Response

from sequencer.app.api import NowDep, SessionDep, SettingsDep
from sequencer.core.config import ConfigError
from sequencer.core.yaml_source import SourceError
from sequencer.reports import deliverability, formats, page, pipeline
from sequencer.reports.period import ReportError, scope

router = APIRouter(prefix="/reports", tags=["reports"])
_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8", "html": "text/html; charset=utf-8"}
_BUILDERS = {"deliverability": deliverability.build, "pipeline": pipeline.build}


@router.get("/{name}")
def report(name: Literal["deliverability", "pipeline"], session: SessionDep, settings: SettingsDep, now: NowDep,
           since: str | None = None, until: str | None = None, mailbox: str = "", domain: str = "",
           format: Literal["json", "csv", "html"] = "json") -> Response:
    try:
        document = _BUILDERS[name](session, now, settings, scope(session, now, since, until, mailbox, domain))
    except (ReportError, ConfigError) as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    except SourceError as exc:
        raise HTTPException(status_code=400, detail="; ".join(exc.errors)) from None
    body = {"json": formats.to_json, "csv": formats.to_csv, "html": page.render}[format](document)
    return Response(content=body, media_type=_TYPES[format])
