"""The decision log: one row per decision, written in the caller's transaction."""

from __future__ import annotations

import pytest
from conftest import MONDAY
from sqlmodel import select

from sequencer.core import decisions
from sequencer.core.models import Decision


def _kinds(session) -> list[str]:
    return list(session.exec(select(Decision.kind).order_by(Decision.id)).all())


def test_a_decision_commits_and_rolls_back_with_the_caller(session):
    decisions.record(session, MONDAY, "kept", "x", prospect_id=1, why="detail")
    session.commit()
    decisions.record(session, MONDAY, "dropped")
    session.rollback()

    assert _kinds(session) == ["kept"]
    assert session.exec(select(Decision)).one().detail == {"why": "detail"}


def test_batched_decisions_are_written_together_at_the_end_in_order(session):
    with decisions.batched(session):
        for kind in ("first", "second"):
            decisions.record(session, MONDAY, kind)
        assert _kinds(session) == []  # held until the batch ends
        with decisions.batched(session):  # an inner batch leaves the writing to the outer one
            decisions.record(session, MONDAY, "third")
        assert _kinds(session) == []
    session.commit()

    assert _kinds(session) == ["first", "second", "third"]


def test_flush_makes_held_decisions_visible_inside_the_batch(session):
    with decisions.batched(session):
        decisions.record(session, MONDAY, "early")
        decisions.flush(session)
        assert _kinds(session) == ["early"]
        decisions.record(session, MONDAY, "late")
    assert _kinds(session) == ["early", "late"]


def test_a_batch_that_raises_writes_nothing_and_holds_nothing_after(session):
    with pytest.raises(RuntimeError), decisions.batched(session):
        decisions.record(session, MONDAY, "lost")
        raise RuntimeError("boom")
    decisions.record(session, MONDAY, "after")  # written at once again: no batch is open

    assert _kinds(session) == ["after"]
