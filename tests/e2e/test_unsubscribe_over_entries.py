"""RFC 8058 one-click unsubscribe through a real uvicorn server, over an entry the address already has.

An earlier entry of another reason (here a hard bounce, the kind a forged bounce used to
leave) must not swallow the opt-out: after the POST the stored entry is an unsubscribe.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy.engine import Engine
from suppression_fixtures import NOW, SECRET, all_entries, live_server, migrated_engine, open_session

from sequencer.app.api import create_app
from sequencer.core.clock import SimulatedClock
from sequencer.core.config import Settings
from suppression.store import add_entry, make_spec, stage_entry
from suppression.tokens import make_token

SETTINGS = Settings(secret_key=SECRET, unsubscribe_url="https://unsub.example.net/u")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine]]:
    engine = migrated_engine(tmp_path_factory.mktemp("http"))
    with live_server(create_app(SETTINGS, engine, SimulatedClock(NOW))) as base:
        yield base, engine
    engine.dispose()


def entry_of(engine: Engine, address: str):
    (entry,) = [e for e in all_entries(engine) if e.value == address]
    return entry


@pytest.mark.parametrize("earlier", ["hard_bounce", "manual", "complaint"])
def test_a_one_click_post_is_recorded_over_an_earlier_entry(server, earlier: str) -> None:
    base, engine = server
    address = f"{earlier.replace('_', '-')}@example.com"
    with open_session(engine) as session:
        add_entry(session, NOW, make_spec(address, reason=earlier, note="earlier note"), added_by="rule earlier")

    with httpx.Client(base_url=base, follow_redirects=False, timeout=10) as client:
        response = client.post("/u/" + make_token(SECRET, address), data={"List-Unsubscribe": "One-Click"})

    assert response.status_code == 200
    entry = entry_of(engine, address)
    assert (entry.reason, entry.expires_at, entry.added_by) == ("unsubscribed", None, "one-click")
    assert f"earlier {earlier} entry added by rule earlier" in entry.note and "earlier note" in entry.note


def test_a_bounce_after_the_one_click_cannot_take_its_place(server) -> None:
    base, engine = server
    address = "later-bounce@example.com"
    with open_session(engine) as session:
        add_entry(session, NOW, make_spec(address, reason="hard_bounce"), added_by="rule builtin.bounce.hard")
    with httpx.Client(base_url=base, timeout=10) as client:
        assert client.post("/u/" + make_token(SECRET, address)).status_code == 200

    with open_session(engine) as session:
        _, change = stage_entry(session, NOW, make_spec(address, reason="hard_bounce"), added_by="rule x")
        session.commit()

    assert change == "kept" and entry_of(engine, address).reason == "unsubscribed"
