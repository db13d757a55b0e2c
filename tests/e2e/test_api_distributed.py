"""The distributed run end to end, from outside: signals POSTed over HTTP, emails out through workers.

A real uvicorn serves the API on PostgreSQL with an API key; real Celery worker processes
(``celery -A sequencer.app.celery_app worker``, **no beat**: no tick runs, so only the API's
hand-off can act) consume from Redis; the loopback SMTP server receives the mail. The API
stores each batch, then enqueues its ids; the workers process them and send the first
email in the same pass.
"""

# ruff: noqa: F811 - the imported fixtures are meant to be shadowed by test arguments

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from conftest_dns import dns_server  # noqa: F401 - the fixture
from sqlmodel import select
from suppression_fixtures import live_server
from test_celery_worker import (  # noqa: F401 - fixtures
    Workspace,
    add_prospects,
    database,
    redis_url,
    start_worker,
    touches,
    wait_until,
    workspace,
)

from sequencer.app.api import create_app
from sequencer.core import api_keys
from sequencer.core.clock import SystemClock
from sequencer.core.config import load_settings
from sequencer.core.db import session as new_session
from sequencer.core.models import Signal
from sequencer.loopback.smtp_server import LocalSmtpServer

PEOPLE = [f"p{n}@company{n}.example" for n in range(6)]  # one each: the recipient-domain cap is 5 a day


def test_signals_posted_over_http_are_mailed_by_the_workers_without_a_tick(
    workspace: Workspace, start_worker: Callable[..., Path], smtp: LocalSmtpServer
) -> None:
    start_worker("api", concurrency=2)  # two pool processes consume the API's messages
    add_prospects(workspace, *PEOPLE)
    settings = load_settings(workspace.config, env=workspace.env)
    assert settings.database_url.startswith("postgresql") and settings.signal_dispatch == "auto"
    with new_session(workspace.engine) as session:
        token = api_keys.create(session, SystemClock().now(), "feed", ["signals"]).key
    headers = {"Authorization": f"Bearer {token}"}
    batch = [{"type": "intent_surge", "email": email, "dedupe_key": f"feed:{email}"} for email in PEOPLE[:5]]

    with live_server(create_app(settings, workspace.engine)) as base:
        stored = httpx.post(f"{base}/signals", json=batch, headers=headers, timeout=30)
        lone = httpx.post(f"{base}/signals", json={"type": "intent_surge", "email": PEOPLE[5]}, headers=headers,
                          timeout=30)
        wait_until(lambda: len(smtp.messages) >= len(PEOPLE), "the workers to send every first email")
        again = httpx.post(f"{base}/signals", json=batch, headers=headers, timeout=30)
        wait_until(lambda: httpx.get(f"{base}/health", timeout=30).json()["signals"]["unprocessed"] == 0,
                   "the health check to show nothing waiting")
        health = httpx.get(f"{base}/health", timeout=30).json()

    assert stored.status_code == 202 and lone.status_code == 202
    assert [item["duplicate"] for item in again.json()["accepted"]] == [True] * 5
    assert sorted(rcpt for message in smtp.messages for rcpt in message.rcpt_tos) == sorted(PEOPLE)
    assert sorted((t.recipient, t.state) for t in touches(workspace)) == sorted((p, "sent") for p in PEOPLE)
    with new_session(workspace.engine) as session:
        assert all(s.processed_at is not None for s in session.exec(select(Signal)))
    assert (health["status"], health["database"], health["broker"]) == ("ok", "ok", "ok")
