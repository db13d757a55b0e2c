"""The HTTP API for signals, prospects, enrollments and health, over a real uvicorn, on SQLite and PostgreSQL.

Keys are made as ``sequencer api-keys create`` makes them. A refused request stores
nothing; a batch is taken per item (each bad item named by its index and field).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from engine_support import add_prospect, prepare, write_templates
from sqlalchemy.engine import Engine
from sqlmodel import func, select
from suppression_fixtures import live_server

from sequencer.app.api import create_app
from sequencer.app.api.signals import MAX_BATCH, MAX_BODY
from sequencer.core import api_keys
from sequencer.core.clock import SimulatedClock
from sequencer.core.config import Settings
from sequencer.core.db import session as new_session
from sequencer.core.models import Decision, Enrollment, Signal

DANA = "dana@northwind.example"
UNREACHABLE_BROKER = "redis://127.0.0.1:9/0"  # the discard port: nothing answers


@pytest.fixture
def workspace(tmp_path, engine: Engine, settings: Settings, clock: SimulatedClock) -> Settings:
    settings.templates_dir = write_templates(tmp_path / "templates")
    settings.signal_dispatch = "none"  # these tests look at what is stored; the e2e distributed test dispatches
    with new_session(engine) as session:
        prepare(session, clock.now(), settings, settings.templates_dir)
        add_prospect(session, clock.now(), DANA)
    return settings


@pytest.fixture
def server(engine: Engine, workspace: Settings, clock: SimulatedClock) -> Iterator[str]:
    with live_server(create_app(workspace, engine, clock)) as base:
        yield base


def key(engine: Engine, clock: SimulatedClock, *scopes: str, name: str = "crm") -> dict[str, str]:
    with new_session(engine) as session:
        return {"Authorization": f"Bearer {api_keys.create(session, clock.now(), name, list(scopes)).key}"}


def count(engine: Engine, model: type) -> int:
    with new_session(engine) as session:
        return session.exec(select(func.count()).select_from(model)).one()


def surge(email: str = DANA, **extra) -> dict:
    return {"type": "intent_surge", "email": email, "score": 80, **extra}


# --- POST /signals ----------------------------------------------------------------------


def test_signals_need_a_key_with_the_signals_scope_and_a_refused_request_stores_nothing(server, engine, clock):
    assert httpx.post(f"{server}/signals", json=surge()).status_code == 401
    assert httpx.post(f"{server}/signals", json=surge(), headers=key(engine, clock, "inbound")).status_code == 403
    assert count(engine, Signal) == 0

    response = httpx.post(f"{server}/signals", json=surge(), headers=key(engine, clock, "signals", name="feed"))

    assert response.status_code == 202
    (accepted,) = response.json()["accepted"]
    assert accepted["index"] == 0 and accepted["duplicate"] is False
    with new_session(engine) as session:
        stored = session.get(Signal, accepted["id"])
    assert (stored.type, stored.email, stored.source, stored.payload) == ("intent_surge", DANA, "api", {"score": 80})


def test_a_batch_is_taken_per_item_bad_items_named_by_index_and_field(server, engine, clock):
    batch = [
        surge(dedupe_key="crm:1"),
        surge(email="not-an-address"),
        {"type": "rumour", "email": "lee@fabrikam.example"},
        surge(dedupe_key="crm:1"),  # the same signal again
        ["not", "an", "object"],
        {"type": "job_change", "domain": "fabrikam.example", "occurred_at": "2031-01-01T00:00:00Z"},
        surge(email="lee@fabrikam.example", payload={"deep": json.loads("[" * 9 + "]" * 9)}),
    ]

    response = httpx.post(f"{server}/signals", json=batch, headers=key(engine, clock, "admin"))

    assert response.status_code == 202
    body = response.json()
    first = body["accepted"][0]["id"]
    assert body["accepted"] == [{"index": 0, "id": first, "duplicate": False},
                                {"index": 3, "id": first, "duplicate": True}]
    assert [(error["index"], error["field"]) for error in body["errors"]] == [
        (1, "email"), (2, "type"), (4, "signal"), (5, "occurred_at"), (6, "payload.deep" + "[0]" * 7)]
    assert count(engine, Signal) == 1


def test_a_request_with_no_good_item_is_422_and_stores_nothing(server, engine, clock):
    response = httpx.post(f"{server}/signals", json=[{"type": "intent_surge"}, {"email": DANA}],
                          headers=key(engine, clock, "signals"))

    assert response.status_code == 422
    assert [(e["index"], e["field"]) for e in response.json()["errors"]] == [(0, "email or domain"), (1, "type")]
    assert count(engine, Signal) == 0


@pytest.mark.parametrize(("content", "status", "says"), [
    (b"{not json", 400, "not valid JSON"),
    (b'{"type": "intent_surge", "email": "dana@northwind.example", "score": NaN}', 400, "NaN"),
    (json.dumps([surge(n=i) for i in range(MAX_BATCH + 1)]).encode(), 413, f"at most {MAX_BATCH}"),
    (b"[]", 422, "empty"),
    (b'"a string"', 422, "a JSON object"),
])
def test_bodies_that_are_not_signals_are_refused_whole(server, engine, clock, content, status, says):
    response = httpx.post(f"{server}/signals", content=content, headers={
        **key(engine, clock, "signals"), "Content-Type": "application/json"})

    assert response.status_code == status
    assert says in response.text
    assert count(engine, Signal) == 0


def test_a_body_over_the_limit_is_refused_before_it_is_read(server, engine, clock):
    url = urlsplit(server)
    token = key(engine, clock, "signals")["Authorization"]
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall((f"POST /signals HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: {token}\r\n"
                      f"Content-Type: application/json\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n[").encode())
        answer = sock.recv(4096)  # the rest of the body never comes: the refusal does not wait for it

    assert answer.startswith(b"HTTP/1.1 413 ")
    assert count(engine, Signal) == 0


def test_a_broker_that_cannot_be_reached_loses_nothing_the_signal_waits_for_the_tick(engine, workspace, clock):
    workspace.signal_dispatch, workspace.broker_url = "celery", UNREACHABLE_BROKER
    with live_server(create_app(workspace, engine, clock)) as base:
        response = httpx.post(f"{base}/signals", json=surge(), headers=key(engine, clock, "signals"), timeout=30)
        health = httpx.get(f"{base}/health", timeout=30)

    assert response.status_code == 202
    with new_session(engine) as session:
        stored = session.get(Signal, response.json()["accepted"][0]["id"])
    assert stored.processed_at is None  # stored before it was (not) enqueued: the tick takes it
    assert health.status_code == 503
    assert health.json()["broker"].startswith("unreachable") and "127.0.0.1" not in health.text


# --- prospects ------------------------------------------------------------------------


def test_prospects_are_created_and_updated_per_item_and_read_back(server, engine, clock):
    admin = key(engine, clock, "admin")
    batch = [
        {"email": "Lee@Fabrikam.example", "first_name": "Lee", "company": "Fabrikam", "country": "Germany",
         "custom": {"crm_id": "L-1"}},
        {"email": DANA, "title": "VP Sales"},
        {"email": "sam@contoso.example", "frist_name": "Sam"},
        {"email": "kim@contoso.example", "country": "Atlantis"},
        {"email": "nobody"},
    ]

    response = httpx.post(f"{server}/prospects", json=batch, headers=admin)

    assert response.status_code == 200
    body = response.json()
    assert (body["stored"], body["created"]) == (2, 1)
    assert [(a["index"], a["email"]) for a in body["accepted"]] == [(0, "lee@fabrikam.example"), (1, DANA)]
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(2, "frist_name"), (3, "country"), (4, "email")]
    lee = httpx.get(f"{server}/prospects/lee@fabrikam.example", headers=admin).json()
    assert (lee["first_name"], lee["country"], lee["custom"], lee["account"]["name"]) == (
        "Lee", "DE", {"crm_id": "L-1"}, "Fabrikam")
    assert httpx.get(f"{server}/prospects/{DANA}", headers=admin).json()["title"] == "VP Sales"
    assert httpx.get(f"{server}/prospects/nobody@else.example", headers=admin).status_code == 404
    assert httpx.get(f"{server}/prospects/{DANA}").status_code == 401  # reads need a key: personal data
    assert httpx.get(f"{server}/prospects/{DANA}", headers=key(engine, clock, "signals", name="feed")
                     ).status_code == 403


def test_explain_is_the_cli_story_as_json(server, engine, clock):
    admin = key(engine, clock, "admin")
    httpx.post(f"{server}/signals", json=[surge(), surge(email="lee@fabrikam.example", score=10)], headers=admin)
    with new_session(engine) as session:  # what the tick or a worker does with a stored signal
        from sequencer.intake import enrolling

        enrolling.process_stored(session, clock.now(), list(session.exec(select(Signal.id)).all()))

    dana = httpx.get(f"{server}/prospects/{DANA}/explain", headers=admin).json()
    lee = httpx.get(f"{server}/prospects/lee@fabrikam.example/explain", headers=admin).json()

    (enrollment,) = dana["enrollments"]
    assert (enrollment["sequence"], enrollment["state"]) == ("outbound", "active")
    assert [step["kind"] for step in enrollment["steps"]] == ["email", "wait", "email", "call", "wait_for_signal",
                                                               "email"]
    assert (enrollment["steps"][0]["step_id"], enrollment["steps"][0]["status"]) == ("first", "current")
    assert enrollment["decisions"][0]["kind"] == "enrolled"
    assert lee["enrollments"] == []
    assert any(d["kind"] == "not_enrolled" and "signal.score" in d["reason"] for d in lee["decisions"])


# --- enrollments ----------------------------------------------------------------------


def _enroll(engine: Engine, clock: SimulatedClock, emails: list[str]) -> None:
    from sequencer.intake import enrolling, signals

    with new_session(engine) as session:
        for email in emails:
            add_prospect(session, clock.now(), email)
        results = signals.store_many(session, clock.now(), [signals.SignalIn("intent_surge", email=e,
                                                                             payload={"score": 90}) for e in emails])
        enrolling.process_stored(session, clock.now(), [r.id for r in results])


def test_enrollments_are_listed_with_filters_a_page_at_a_time(server, engine, clock):
    _enroll(engine, clock, ["a@one.example", "b@two.example", "c@three.example"])
    admin = key(engine, clock, "admin")

    first = httpx.get(f"{server}/enrollments", params={"limit": 2}, headers=admin).json()
    second = httpx.get(f"{server}/enrollments", params={"limit": 2, "after_id": first["next_after_id"]},
                       headers=admin).json()
    only_b = httpx.get(f"{server}/enrollments", params={"email": "b@two.example"}, headers=admin).json()

    assert [e["email"] for e in first["enrollments"]] == ["a@one.example", "b@two.example"]
    assert [e["email"] for e in second["enrollments"]] == ["c@three.example"] and second["next_after_id"] is None
    assert [e["email"] for e in only_b["enrollments"]] == ["b@two.example"]
    assert httpx.get(f"{server}/enrollments", params={"state": "stopped"}, headers=admin).json()["enrollments"] == []
    assert httpx.get(f"{server}/enrollments", params={"state": "bogus"}, headers=admin).status_code == 422
    assert httpx.get(f"{server}/enrollments", params={"limit": 10_000}, headers=admin).status_code == 422
    assert httpx.get(f"{server}/enrollments").status_code == 401


def test_pause_resume_stop_go_through_the_lifecycle_and_refuse_what_the_state_does_not_allow(server, engine, clock):
    _enroll(engine, clock, ["a@one.example"])
    admin = key(engine, clock, "admin", name="ops")
    with new_session(engine) as session:
        enrollment_id = session.exec(select(Enrollment.id)).one()
    url = f"{server}/enrollments/{enrollment_id}"

    paused = httpx.post(f"{url}/pause", json={"reason": "asked to wait"}, headers=admin)
    again = httpx.post(f"{url}/pause", headers=admin)
    resumed = httpx.post(f"{url}/resume", headers=admin)
    stopped = httpx.post(f"{url}/stop", json={"reason": "wrong person"}, headers=admin)
    after_stop = httpx.post(f"{url}/resume", headers=admin)

    assert (paused.status_code, paused.json()["state"]) == (200, "paused")
    assert "asked to wait" in paused.json()["reason"]
    assert again.status_code == 409 and "not active" in again.json()["detail"]
    assert (resumed.status_code, resumed.json()["state"]) == (200, "active")
    assert (stopped.status_code, stopped.json()["state"]) == (200, "stopped")
    assert after_stop.status_code == 409
    assert httpx.post(f"{server}/enrollments/999999/stop", headers=admin).status_code == 404
    assert httpx.post(f"{url}/stop", json={"reason": "x", "extra": 1}, headers=admin).status_code == 422
    assert httpx.post(f"{url}/stop").status_code == 401
    with new_session(engine) as session:
        kinds = [(d.kind, d.detail.get("by")) for d in session.exec(
            select(Decision).where(Decision.enrollment_id == enrollment_id,
                                   Decision.kind.in_(["paused", "resumed", "stopped"])).order_by(Decision.id))]
    assert kinds == [("paused", "api:ops"), ("resumed", None), ("stopped", "api:ops")]


# --- health ---------------------------------------------------------------------------


def test_health_is_open_says_what_waits_and_nothing_about_people(server, engine, clock):
    _enroll(engine, clock, ["a@one.example"])
    httpx.post(f"{server}/signals", json=surge(), headers=key(engine, clock, "signals"))

    response = httpx.get(f"{server}/health")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["database"], body["broker"]) == ("ok", "ok", "not used")
    assert body["due"]["enrollments"] == 1 and body["due"]["oldest_due_seconds"] >= 0
    assert body["signals"] == {"unprocessed": 1, "oldest_unprocessed_seconds": 0.0}
    assert "@" not in response.text


def test_the_openapi_document_shows_the_routes_with_examples(server):
    document = httpx.get(f"{server}/openapi.json").json()

    assert {"/signals", "/prospects", "/prospects/{email}", "/prospects/{email}/explain", "/enrollments",
            "/enrollments/{enrollment_id}/pause", "/health"} <= set(document["paths"])
    examples = document["paths"]["/signals"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert set(examples) == {"one", "batch"}
    assert "examples" in document["paths"]["/prospects"]["post"]["requestBody"]["content"]["application/json"]
    assert httpx.get(f"{server}/docs").status_code == 200
