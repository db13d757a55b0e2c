"""The HTTP API: a thin FastAPI shell over the engine modules.

``create_app`` holds the settings, the SQLAlchemy engine and the clock in
``app.state``; route modules reach them only through the dependencies below, so a
test can build an app on a tmp SQLite file and a simulated clock with no globals.

Every write route needs an API key unless mounted open for a stated reason: see
``sequencer.app.api.auth`` (``mount_writes`` / ``mount_open``), which ``create_app`` uses
for every router and then checks. ``/docs`` serves the Swagger UI of ``/openapi.json``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from sqlalchemy.engine import Engine
from sqlmodel import Session

from sequencer.core.clock import Clock, SystemClock
from sequencer.core.config import Settings, signing_secret
from sequencer.core.db import session as new_session


def create_app(settings: Settings, engine: Engine, clock: Clock | None = None) -> FastAPI:
    """An app serving every router on ``engine``; the schema must already be migrated.

    Refuses settings without a usable ``secret_key`` (ConfigError): the unsubscribe
    routes verify their tokens with it.
    """
    from sequencer.app.api.auth import mount_open, mount_writes, unauthenticated_writes
    from sequencer.app.api.enrollments import router as enrollments_router
    from sequencer.app.api.health import router as health_router
    from sequencer.app.api.inbound import router as inbound_router
    from sequencer.app.api.meetings import router as meetings_router
    from sequencer.app.api.prospects import router as prospects_router
    from sequencer.app.api.reports import router as reports_router
    from sequencer.app.api.signals import dispatch
    from sequencer.app.api.signals import router as signals_router
    from sequencer.app.api.unsubscribe import router as unsubscribe_router
    from sequencer.app.api.webhooks import router as webhooks_router

    signing_secret(settings)
    app = FastAPI(title="sequencer", docs_url="/docs", redoc_url=None)
    app.state.settings = settings
    app.state.engine = engine
    app.state.clock = clock or SystemClock()
    mount_open(app, unsubscribe_router, "RFC 8058 one-click unsubscribe: the signed token in the URL is the proof")
    mount_writes(app, inbound_router, "inbound")
    mount_writes(app, meetings_router, "admin")
    mount_writes(app, signals_router, "signals")
    mount_writes(app, prospects_router, "admin")  # reads too: prospects are personal data
    mount_writes(app, enrollments_router, "admin")
    mount_writes(app, reports_router, "admin")  # reads only, but every mailbox and meeting figure
    mount_open(app, health_router, "read-only, for load balancers and monitors: says whether the database and "
                                   "broker answer and how much work waits, nothing about people or hosts")
    mount_open(app, webhooks_router, "booking tools' webhooks: the HMAC signature over the body, with the "
                                     "secret configured for that tool, is the proof (no secret: refused)")
    open_doors = unauthenticated_writes(app)
    if open_doors:
        raise RuntimeError(f"write routes without an API key: {', '.join(open_doors)}; mount them with mount_writes")
    dispatch(app.state)  # a bad signal_dispatch is refused at start, not at the first signal
    return app


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, closed afterwards; routes commit their own work."""
    with new_session(request.app.state.engine) as session:
        yield session


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_now(request: Request) -> datetime:
    """The request's "now", from the app's clock, so tests can pin time."""
    return request.app.state.clock.now()


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
NowDep = Annotated[datetime, Depends(get_now)]
