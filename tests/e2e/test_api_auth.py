"""Who may write through the HTTP API: API keys on ``POST /inbound``, over a real uvicorn on loopback.

Keys are made the way ``sequencer api-keys create`` makes them (``sequencer.core.api_keys``)
and revoked through the CLI itself, against the same database the server reads, on SQLite
and PostgreSQL.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import func, select
from suppression_fixtures import live_server
from typer.testing import CliRunner

from sequencer.app.api import create_app
from sequencer.app.api.auth import mount_writes, unauthenticated_writes
from sequencer.app.cli import app as cli
from sequencer.core import api_keys
from sequencer.core.clock import SimulatedClock
from sequencer.core.config import ConfigError, Settings
from sequencer.core.db import session as new_session
from sequencer.core.models import ApiKey, InboundMessage
from suppression.models import SuppressionEntry
from suppression.tokens import make_token

MESSAGE = (b"From: stranger@elsewhere.example\r\nTo: sam@outreach-acme.example\r\nSubject: hello\r\n"
           b"Message-ID: <auth-test-1@elsewhere.example>\r\nDate: Mon, 30 Nov 2026 15:00:00 +0000\r\n\r\nHi there.\r\n")
RFC822 = {"Content-Type": "message/rfc822"}


@pytest.fixture
def server(engine: Engine, settings: Settings, clock: SimulatedClock) -> Iterator[str]:
    with live_server(create_app(settings, engine, clock)) as base:
        yield base


def new_key(engine: Engine, clock: SimulatedClock, name: str = "parse-service", scopes=("inbound",)) -> str:
    with new_session(engine) as session:
        return api_keys.create(session, clock.now(), name, list(scopes)).key


def stored_messages(engine: Engine) -> int:
    with new_session(engine) as session:
        return session.exec(select(func.count()).select_from(InboundMessage)).one()


def key_row(engine: Engine, name: str) -> ApiKey:
    with new_session(engine) as session:
        return session.exec(select(ApiKey).where(ApiKey.name == name)).one()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_post_inbound_without_a_key_is_401_with_a_challenge_and_stores_nothing(server, engine):
    response = httpx.post(f"{server}/inbound", content=MESSAGE, headers=RFC822)

    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="sequencer"') and 'Basic realm="sequencer"' in challenge
    assert "API key is required" in response.json()["detail"]
    assert stored_messages(engine) == 0


@pytest.mark.parametrize("authorization", [
    "Bearer sqk_notakeyatallnotakeyatallnotakeyatall00000",
    "Bearer {key}x",  # one character more: another digest
    "Bearer {truncated}",
    "Token {key}",  # a scheme we do not take
    "Basic !!!not-base64!!!",
    "Basic " + base64.b64encode(b"just-a-user").decode(),  # no colon, so no password
    "{basic_user_only}",  # the key as the user name, no password
    "Bearer",
], ids=["unknown", "longer", "truncated", "other-scheme", "bad-base64", "no-colon", "key-as-user", "empty"])
def test_a_wrong_or_malformed_key_is_401_and_stores_nothing(server, engine, clock, authorization):
    key = new_key(engine, clock)
    header = authorization.format(key=key, truncated=key[:-1], basic_user_only=basic(key, ""))

    response = httpx.post(f"{server}/inbound", content=MESSAGE, headers={**RFC822, "Authorization": header})

    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="sequencer"')
    assert stored_messages(engine) == 0
    assert key_row(engine, "parse-service").last_used_at is None


def test_a_bearer_key_is_accepted_and_its_use_recorded(server, engine, clock):
    key = new_key(engine, clock)

    response = httpx.post(f"{server}/inbound", content=MESSAGE, headers={**RFC822, "Authorization": f"Bearer {key}"})

    assert response.status_code == 200, response.text
    assert response.json()["duplicate"] is False
    assert stored_messages(engine) == 1
    assert key_row(engine, "parse-service").last_used_at == clock.now()


def test_the_key_as_the_basic_auth_password_of_the_url_is_accepted(server, engine, clock):
    """What an inbound-parse service configured with https://anything:KEY@host/inbound sends."""
    key = new_key(engine, clock)
    url = httpx.URL(f"{server}/inbound").copy_with(username="anything", password=key)

    response = httpx.post(url, content=MESSAGE, headers=RFC822)

    assert response.request.headers["Authorization"] == basic("anything", key)
    assert response.status_code == 200, response.text
    assert stored_messages(engine) == 1


def test_an_admin_key_may_post_inbound(server, engine, clock):
    key = new_key(engine, clock, "ops", ["admin"])

    response = httpx.post(f"{server}/inbound", content=MESSAGE, headers={**RFC822, "Authorization": f"Bearer {key}"})

    assert response.status_code == 200, response.text


def test_a_key_revoked_with_the_cli_stops_working_at_once(server, engine, clock, settings, monkeypatch, tmp_path):
    key = new_key(engine, clock)
    auth = {**RFC822, "Authorization": f"Bearer {key}"}
    assert httpx.post(f"{server}/inbound", content=MESSAGE, headers=auth).status_code == 200
    monkeypatch.chdir(tmp_path)

    revoked = CliRunner().invoke(cli, ["api-keys", "revoke", "parse-service"],
                                 env={"SEQUENCER_DATABASE_URL": settings.database_url})
    again = httpx.post(f"{server}/inbound", content=MESSAGE.replace(b"auth-test-1", b"auth-test-2"), headers=auth)

    assert revoked.exit_code == 0, revoked.output
    assert again.status_code == 401
    assert 'error="invalid_token"' in again.headers["WWW-Authenticate"]
    assert stored_messages(engine) == 1


def test_last_used_is_written_at_most_once_a_minute(server, engine, clock):
    key = new_key(engine, clock)
    auth = {**RFC822, "Authorization": f"Bearer {key}"}
    first = clock.now()
    httpx.post(f"{server}/inbound", content=MESSAGE, headers=auth)
    clock.advance(timedelta(seconds=30))
    httpx.post(f"{server}/inbound", content=MESSAGE, headers=auth)
    assert key_row(engine, "parse-service").last_used_at == first

    clock.advance(timedelta(seconds=30))
    httpx.post(f"{server}/inbound", content=MESSAGE, headers=auth)

    assert key_row(engine, "parse-service").last_used_at == first + timedelta(minutes=1)


def test_one_click_unsubscribe_needs_no_key(server, engine, settings):
    """RFC 8058: mailbox providers POST without credentials; the signed token is the proof."""
    response = httpx.post(f"{server}/u/{make_token(settings.secret_key, 'ann@example.com')}",
                          data={"List-Unsubscribe": "One-Click"})

    assert response.status_code == 200, response.text
    with new_session(engine) as session:
        assert session.exec(select(SuppressionEntry.value)).all() == ["ann@example.com"]


def test_docs_and_the_openapi_document_are_served_and_declare_the_key(server):
    docs = httpx.get(f"{server}/docs")
    document = httpx.get(f"{server}/openapi.json").json()

    assert docs.status_code == 200 and "swagger-ui" in docs.text and "/openapi.json" in docs.text
    schemes = document["components"]["securitySchemes"]
    assert {(s["type"], s["scheme"]) for s in schemes.values()} == {("http", "bearer"), ("http", "basic")}
    assert document["paths"]["/inbound"]["post"]["security"] == [{name: []} for name in schemes]
    assert "security" not in document["paths"]["/u/{token}"]["post"]


def test_a_write_route_mounted_without_a_key_is_found(engine, settings):
    """The default: create_app refuses an app in which this list is not empty."""
    app = create_app(settings, engine)
    assert unauthenticated_writes(app) == []
    extra = APIRouter()

    @extra.post("/signals")
    def post_signal() -> dict:
        return {}

    app.include_router(extra)
    app.add_route("/raw", lambda request: None, methods=["PUT"])  # a plain Starlette route, no dependencies

    assert unauthenticated_writes(app) == ["POST /signals", "PUT /raw"]


def test_a_key_without_the_scope_a_route_needs_is_403(engine, clock):
    """Every key may post inbound today (admin includes it), so the 403 is shown on an admin-only route."""
    app = FastAPI()
    app.state.engine, app.state.clock = engine, clock
    router = APIRouter()

    @router.post("/admin-thing")
    def admin_thing() -> dict:
        return {"done": True}

    mount_writes(app, router, "admin")
    inbound_key, admin_key = new_key(engine, clock), new_key(engine, clock, "ops", ["admin"])

    with live_server(app) as base:
        refused = httpx.post(f"{base}/admin-thing", headers={"Authorization": f"Bearer {inbound_key}"})
        allowed = httpx.post(f"{base}/admin-thing", headers={"Authorization": f"Bearer {admin_key}"})

    assert refused.status_code == 403
    assert 'error="insufficient_scope", scope="admin"' in refused.headers["WWW-Authenticate"]
    assert allowed.status_code == 200 and allowed.json() == {"done": True}


def test_an_app_is_not_built_without_a_usable_secret(engine):
    with pytest.raises(ConfigError, match="no secret_key is set"):
        create_app(Settings(), engine)


def test_nothing_in_the_key_table_is_the_key(engine, clock):
    key = new_key(engine, clock)

    with new_session(engine) as session:
        row = session.exec(select(ApiKey)).one()

    assert key not in repr(row.model_dump())
    assert row.prefix == key[:12] and len(row.key_hash) == 64
