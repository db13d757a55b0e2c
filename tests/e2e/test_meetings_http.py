"""``POST /meetings`` over a real uvicorn on loopback, on SQLite and PostgreSQL.

The key is made as ``sequencer api-keys create`` makes it; the invitation goes to the
loopback SMTP server. A refused request stores nothing: no meeting, no prospect, no decision.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from engine_support import add_prospect, fire, prepare, write_templates
from sqlalchemy.engine import Engine
from sqlmodel import func, select
from suppression_fixtures import live_server

from sequencer.app.api import create_app
from sequencer.core import api_keys
from sequencer.core.clock import SimulatedClock
from sequencer.core.config import Settings
from sequencer.core.db import session as new_session
from sequencer.core.models import Decision, Enrollment, Meeting, Prospect

DANA = "dana@northwind.example"
AE = "alex.ae@acme.example"


@pytest.fixture
def workspace(tmp_path, engine: Engine, settings: Settings, clock: SimulatedClock) -> Settings:
    settings.templates_dir = write_templates(tmp_path / "templates")
    settings.meeting_aes = [AE]
    with new_session(engine) as session:
        prepare(session, clock.now(), settings, settings.templates_dir)
        add_prospect(session, clock.now(), DANA, owner="sam.sdr@acme.example")
        fire(session, clock.now(), "intent_surge", email=DANA, score=80)
    return settings


@pytest.fixture
def server(engine: Engine, workspace: Settings, clock: SimulatedClock) -> Iterator[str]:
    with live_server(create_app(workspace, engine, clock)) as base:
        yield base


def key(engine: Engine, clock: SimulatedClock, scopes=("admin",), name="crm") -> dict[str, str]:
    with new_session(engine) as session:
        return {"Authorization": f"Bearer {api_keys.create(session, clock.now(), name, list(scopes)).key}"}


def body(clock: SimulatedClock, **changes) -> dict:
    return {"prospect_email": DANA, "ae": AE, "start": (clock.now() + timedelta(days=2)).isoformat(),
            "duration_minutes": 30, "location": "https://meet.acme.example/1", **changes}


def stored(engine: Engine) -> tuple[int, int, int]:
    with new_session(engine) as session:
        return tuple(session.exec(select(func.count()).select_from(model)).one()
                     for model in (Meeting, Prospect, Decision))


def test_a_booking_without_a_key_is_401_and_stores_nothing(server, engine, clock):
    before = stored(engine)

    response = httpx.post(f"{server}/meetings", json=body(clock))

    assert response.status_code == 401
    assert stored(engine) == before


def test_a_key_without_the_admin_scope_is_403(server, engine, clock):
    before = stored(engine)

    response = httpx.post(f"{server}/meetings", json=body(clock), headers=key(engine, clock, ("inbound",)))

    assert response.status_code == 403
    assert stored(engine) == before


def test_a_booking_is_stored_stops_the_sequence_and_invites_the_ae(server, engine, clock, smtp):
    response = httpx.post(f"{server}/meetings", json=body(clock, external_id="crm-77"),
                          headers=key(engine, clock))

    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["duplicate"] is False and answer["invited"] == [AE]
    meeting = answer["meeting"]
    assert (meeting["id"], meeting["state"], meeting["source"], meeting["external_id"], meeting["prospect_email"]) == (
        1, "scheduled", "http", "crm-77", DANA)
    assert meeting["start_at"] == (clock.now() + timedelta(days=2)).isoformat()
    with new_session(engine) as session:
        assert session.exec(select(Enrollment)).one().state == "stopped"
        decision = session.exec(select(Decision).where(Decision.kind == "meeting_booked")).one()
    assert decision.detail["via"] == "http"
    assert [m.rcpt_tos for m in smtp.messages] == [[AE]]


def test_the_same_booking_sent_twice_books_once(server, engine, clock, smtp):
    headers = key(engine, clock)
    first = httpx.post(f"{server}/meetings", json=body(clock, external_id="crm-77"), headers=headers)

    again = httpx.post(f"{server}/meetings", json=body(clock, external_id="crm-77"), headers=headers)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["duplicate"] is True and again.json()["meeting"]["id"] == first.json()["meeting"]["id"]
    assert stored(engine)[0] == 1
    assert len(smtp.messages) == 1


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"start": "2026-12-03T15:00:00"}, None, "start: a time zone is required"),
    ({"start": "thursday"}, "start", None),
    ({"start": "2026-11-01T15:00:00Z"}, None, "start: 2026-11-01 15:00 UTC is not in the future"),
    ({"duration_minutes": 0}, None, "duration_minutes: must be between 5 and 480 minutes"),
    ({"ae": "stranger@elsewhere.example"}, None, "ae: stranger@elsewhere.example is not one of the AEs"),
    ({"prospect_email": "not an address"}, None, "prospect_email: invalid email"),
    ({"extra_attendees": [{"email": "x@y.example", "role": "boss"}]}, None,
     "extra_attendees[0].role: 'boss' is not one of ae, prospect, sdr"),
    ({"colour": "blue"}, "colour", None),
], ids=["naive", "not-a-time", "past", "zero-minutes", "unknown-ae", "bad-email", "bad-attendee", "unknown-field"])
def test_a_bad_booking_is_422_naming_the_field_and_stores_nothing(server, engine, clock, smtp, changes, field,
                                                                  message):
    before = stored(engine)

    response = httpx.post(f"{server}/meetings", json=body(clock, **changes), headers=key(engine, clock))

    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    if message:
        assert detail.startswith(message.split(":")[0] + ":") and message in detail
    else:
        assert [error["loc"][-1] for error in detail] == [field]
    assert stored(engine) == before
    assert smtp.messages == []
