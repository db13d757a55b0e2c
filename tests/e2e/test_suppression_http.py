"""RFC 8058 one-click unsubscribe through a real uvicorn server on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy.engine import Engine
from suppression_fixtures import NOW, SECRET, all_entries, live_server, migrated_engine

from sequencer.app.api import create_app
from sequencer.core.clock import SimulatedClock
from sequencer.core.config import Settings
from sequencer.core.db import session as new_session
from sequencer.core.models import Enrollment, Prospect
from sequencer.engine.guards import TouchContext, suppression_guard
from sequencer.engine.tick_state import TickState
from suppression.tokens import make_token, unsubscribe_url

ONE_CLICK = {"List-Unsubscribe": "One-Click"}
SETTINGS = Settings(secret_key=SECRET, unsubscribe_url="https://unsub.example.net/u")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine, Settings]]:
    """One server for the module; each test uses its own addresses, so state does not leak."""
    engine = migrated_engine(tmp_path_factory.mktemp("http"))
    with live_server(create_app(SETTINGS, engine, SimulatedClock(NOW))) as base:
        yield base, engine, SETTINGS
    engine.dispose()


@pytest.fixture
def client(server: tuple[str, Engine, Settings]) -> Iterator[httpx.Client]:
    # No cookies, no redirects: what a mailbox provider's one-click POST looks like.
    with httpx.Client(base_url=server[0], follow_redirects=False, timeout=10) as client:
        yield client


def stored(engine: Engine, address: str) -> list[tuple[str, str, str, str]]:
    return [
        (e.kind, e.value, e.reason, e.added_by) for e in all_entries(engine) if e.value == address
    ]


def path_for(address: str) -> str:
    return "/u/" + make_token(SECRET, address)


def test_one_click_post_unsubscribes_in_the_same_request(server, client: httpx.Client) -> None:
    _, engine, _ = server
    response = client.post(path_for("ann@example.com"), data=ONE_CLICK)
    assert response.status_code == 200
    assert "ann@example.com has been unsubscribed" in response.text
    assert "set-cookie" not in response.headers
    assert stored(engine, "ann@example.com") == [
        ("email", "ann@example.com", "unsubscribed", "one-click")
    ]
    (entry,) = [e for e in all_entries(engine) if e.value == "ann@example.com"]
    assert entry.added_at == NOW


def test_an_empty_body_is_accepted(server, client: httpx.Client) -> None:
    _, engine, _ = server
    response = client.post(path_for("bob@example.com"))
    assert response.status_code == 200
    assert stored(engine, "bob@example.com") == [
        ("email", "bob@example.com", "unsubscribed", "one-click")
    ]


def test_a_second_post_is_200_and_adds_nothing(server, client: httpx.Client) -> None:
    _, engine, _ = server
    for _ in range(2):
        assert client.post(path_for("carol@example.com"), data=ONE_CLICK).status_code == 200
    assert len(stored(engine, "carol@example.com")) == 1


def test_get_shows_a_confirmation_form_and_unsubscribes_no_one(server, client) -> None:
    _, engine, _ = server
    response = client.get(path_for("dave@example.com"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<form method="post">' in response.text
    assert 'name="List-Unsubscribe" value="One-Click"' in response.text
    assert "dave@example.com" in response.text
    assert stored(engine, "dave@example.com") == []


def test_the_form_post_from_the_page_unsubscribes(server, client: httpx.Client) -> None:
    _, engine, _ = server
    path = path_for("erin@example.com")
    client.get(path)
    response = client.post(path, data=ONE_CLICK)
    assert response.status_code == 200
    assert len(stored(engine, "erin@example.com")) == 1


def test_the_url_in_the_headers_is_the_one_the_server_honours(server, client) -> None:
    _, engine, settings = server
    url = unsubscribe_url(settings, "Frank@Example.com")
    response = client.post(httpx.URL(url).path, data=ONE_CLICK)
    assert response.status_code == 200
    assert len(stored(engine, "frank@example.com")) == 1


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_forged_and_altered_tokens_are_refused_and_change_nothing(
    server, client: httpx.Client, method: str
) -> None:
    _, engine, _ = server
    before = len(all_entries(engine))
    genuine = make_token(SECRET, "grace@example.com")
    forged = [
        make_token("not-our-secret", "grace@example.com"),
        genuine[:-2],
        genuine.replace(
            genuine.split(".")[0], make_token(SECRET, "heidi@example.com").split(".")[0]
        ),
        "garbage",
    ]
    for token in forged:
        response = client.request(
            method, f"/u/{token}", data=ONE_CLICK if method == "POST" else None
        )
        assert response.status_code == 400, token
        assert "not valid" in response.text
    assert len(all_entries(engine)) == before


def test_the_send_guard_blocks_after_a_one_click_unsubscribe(server, client) -> None:
    _, engine, settings = server
    with new_session(engine) as session:
        ctx = TouchContext(
            session=session,
            now=NOW,
            settings=settings,
            enrollment=Enrollment(prospect_id=1, sequence_version_id=1, sequence_name="s"),
            prospect=Prospect(email="Ivan@Example.com"),
            account=None,
            step={},
            channel="email",
            definition={},
            tick=TickState(session),
        )
        assert suppression_guard(ctx).go
        client.post(path_for("ivan@example.com"), data=ONE_CLICK)
        verdict = suppression_guard(ctx)
    assert verdict.action == "block"
    assert verdict.reason == "suppressed: unsubscribed (email ivan@example.com)"
