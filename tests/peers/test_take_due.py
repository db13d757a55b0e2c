"""Several ticks on PostgreSQL share the due work: each takes rows no other tick holds
(``lifecycle.take_due``), a claim frees a row, an undone claim gives its rows back, and a
dead tick's rows come back when the lease ends. SQLite (one process) reads them as they are."""

from __future__ import annotations

import pytest
from engine_support import add_prospect, fire, prepare, write_templates
from sqlmodel import select

from sequencer.core.db import make_engine
from sequencer.core.db import session as new_session
from sequencer.core.models import Enrollment
from sequencer.enrollments import lifecycle

EMAILS = [f"p{n}@company{n}.example" for n in range(4)]


@pytest.fixture
def due(tmp_path, session, clock, settings):
    prepare(session, clock.now(), settings, write_templates(tmp_path / "templates"))
    for email in EMAILS:
        add_prospect(session, clock.now(), email)
        fire(session, clock.now(), "intent_surge", email=email, score=80)
    return session.exec(select(Enrollment.id)).all()


def test_two_ticks_take_different_due_rows_and_a_third_finds_none_until_the_lease_ends(due, session, clock,
                                                                                      db_url):
    engine = make_engine(db_url)
    try:
        with new_session(engine) as other, new_session(engine) as third:
            first = lifecycle.take_due(session, clock.now(), limit=2)
            second = lifecycle.take_due(other, clock.now(), limit=2)
            third_now = lifecycle.take_due(third, clock.now(), limit=4)
            later = lifecycle.take_due(third, clock.now() + lifecycle.PLAN_LEASE, limit=4)
    finally:
        engine.dispose()

    if session.get_bind().dialect.name == "sqlite":  # one process: every tick sees every due row
        assert [e.id for e in first] == [e.id for e in second] == sorted(due)[:2]
        return
    assert len(first) == len(second) == 2 and not {e.id for e in first} & {e.id for e in second}
    assert third_now == []
    assert sorted(e.id for e in later) == sorted(due)  # a dead tick's rows are due again after the lease
    assert all(e.next_due_at <= clock.now() for e in first)  # the objects keep their true due time


def test_a_claim_frees_the_row_and_free_gives_back_what_was_not_claimed(due, session, clock):
    taken = lifecycle.take_due(session, clock.now(), limit=4)
    assert lifecycle.claim(session, taken[0])  # a step of this tick: the row is free again
    session.commit()
    lifecycle.free(session, taken[1:2])  # a batch claim undone: given back at once
    again = lifecycle.take_due(session, clock.now(), limit=4)

    expected = {taken[0].id, taken[1].id} if session.get_bind().dialect.name == "postgresql" else set(due)
    assert {e.id for e in again} == expected  # the two others stay taken until their lease ends
