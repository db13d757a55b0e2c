"""A one-click unsubscribe is recorded whatever entry the address already has (store level).

The HTTP side (POST /u/{token} on a real uvicorn) is tests/e2e/test_unsubscribe_over_entries.py.
SQLite and PostgreSQL both (the db_url fixture).
"""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from suppression.models import SuppressionEntry
from suppression.store import add_entry, find_suppression, make_spec, stage_entry, unsubscribe

ANN = "ann@example.com"


def entries(session) -> list[tuple[str, str, str, str]]:
    session.expire_all()
    return [(e.value, e.reason, e.added_by, e.note) for e in session.exec(select(SuppressionEntry))]


def test_an_unsubscribe_over_a_hard_bounce_entry_replaces_it_and_keeps_its_history(session, clock):
    add_entry(session, clock.now(), make_spec(ANN, reason="hard_bounce", note="550 5.1.1 user unknown"),
              added_by="rule builtin.bounce.hard")

    entry = unsubscribe(session, clock.now() + timedelta(hours=1), ANN, "one-click")

    assert (entry.reason, entry.expires_at, entry.added_by) == ("unsubscribed", None, "one-click")
    ((value, reason, added_by, note),) = entries(session)
    assert (value, reason, added_by) == (ANN, "unsubscribed", "one-click")
    assert "earlier hard_bounce entry added by rule builtin.bounce.hard" in note
    assert "550 5.1.1 user unknown" in note


def test_a_later_bounce_or_import_cannot_turn_the_unsubscribe_back(session, clock):
    add_entry(session, clock.now(), make_spec(ANN, reason="hard_bounce"), added_by="rule builtin.bounce.hard")
    unsubscribe(session, clock.now(), ANN, "one-click")

    _, change = stage_entry(session, clock.now(), make_spec(ANN, reason="hard_bounce"), added_by="rule x")
    session.commit()
    add_entry(session, clock.now(), make_spec(ANN, reason="manual", expires_at=clock.now() + timedelta(days=1)))

    assert change == "kept"
    assert [(v, r) for v, r, _, _ in entries(session)] == [(ANN, "unsubscribed")]
    assert find_suppression(session, clock.now() + timedelta(days=400), ANN).reason == "unsubscribed"


def test_a_second_unsubscribe_changes_nothing(session, clock):
    add_entry(session, clock.now(), make_spec(ANN, reason="hard_bounce"), added_by="rule builtin.bounce.hard")
    unsubscribe(session, clock.now(), ANN, "one-click")
    before = entries(session)

    unsubscribe(session, clock.now() + timedelta(days=1), ANN, "reply")

    assert entries(session) == before

