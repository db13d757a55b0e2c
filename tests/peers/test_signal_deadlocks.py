"""Signal processing paths never deadlock each other into a failure, on real PostgreSQL.

The chaos run's deadlock: the lone-signal path claimed the signal row and then inserted
the enrollment, while the batch path inserted the enrollment and then claimed the signals
(``uq_enrollment_running`` against ``UPDATE signal``). These tests force that interleaving
with hooks on each connection (each side waits, at most a few seconds, for the other to
reach its point) and check that nothing fails: the signal claim comes first on every path
now, and a deadlock that can still happen (two batches creating the same two prospects in
opposite orders) is retried like a lost race. Checked to fail before the fix.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from sequencer.core.clock import SimulatedClock
from sequencer.core.db import make_engine
from sequencer.core.db import session as new_session
from sequencer.core.models import Enrollment, Prospect, Signal
from sequencer.intake import enrolling, prospects, signals
from sequencer.sequences import versions

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
MEETING = 5.0  # seconds a side waits for the other to reach its point (then goes on anyway)
SEQUENCE = """\
name: {name}
owner: sam.sdr@acme.example
trigger:
  signals: [intent_surge]
window: {{days: mon-sun, start: "00:00", end: "23:59"}}
mailboxes: [sam@outreach-acme.example]
steps:
  - id: first
    kind: task
    template: first.j2
"""


def load_sequence(session: Session, clock: SimulatedClock, tmp_path: Path) -> None:
    (tmp_path / "sequences").mkdir()
    (tmp_path / "steps").mkdir()
    (tmp_path / "sequences" / "racing.yaml").write_text(SEQUENCE.format(name="racing"))
    (tmp_path / "steps" / "first.j2").write_text("Call {{ prospect.email }}.")
    versions.sync(session, clock.now(), tmp_path)


def store(session: Session, clock: SimulatedClock, *emails: str) -> list[int]:
    results = signals.store_many(session, clock.now(), [
        signals.SignalIn("intent_surge", email=email, payload={"n": n}) for n, email in enumerate(emails)])
    return [result.id for result in results]


def on_statement(engine: Engine, starts: str, before: Callable[[], None] | None = None,
                 after: Callable[[], None] | None = None) -> None:
    """Run ``before`` / ``after`` around the first statement on ``engine`` that starts with ``starts``."""
    fired = {"before": False, "after": False}

    def _before(conn, cursor, statement, *_):
        if before and not fired["before"] and statement.lstrip().startswith(starts):
            fired["before"] = True
            before()

    def _after(conn, cursor, statement, *_):
        if after and not fired["after"] and statement.lstrip().startswith(starts):
            fired["after"] = True
            after()

    event.listen(engine, "before_cursor_execute", _before)
    event.listen(engine, "after_cursor_execute", _after)


def run_side(db_url: str, prepare: Callable[[Engine], None], work: Callable[[Session], object],
             errors: list[BaseException]) -> threading.Thread:
    def target() -> None:
        engine = make_engine(db_url)
        prepare(engine)
        try:
            with new_session(engine) as session:
                work(session)
        except BaseException as exc:  # the test reports it
            errors.append(exc)
        finally:
            engine.dispose()

    thread = threading.Thread(target=target)
    thread.start()
    return thread


def test_a_lone_signal_and_a_batch_on_the_same_prospect_do_not_deadlock(
    session: Session, clock: SimulatedClock, tmp_path: Path, db_url: str
) -> None:
    load_sequence(session, clock, tmp_path)
    prospects.upsert_prospect(session, clock.now(), "dana@northwind.example", {})
    session.commit()
    first, second = store(session, clock, "dana@northwind.example", "dana@northwind.example")
    batch_inserted, lone_claimed = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def batch_side(engine: Engine) -> None:  # inserts the enrollment, then waits for the lone claim
        on_statement(engine, "INSERT INTO enrollment",
                     after=lambda: (batch_inserted.set(), lone_claimed.wait(MEETING)))

    def lone_side(engine: Engine) -> None:  # claims the signal once the batch has inserted
        on_statement(engine, "UPDATE signal", before=lambda: batch_inserted.wait(MEETING), after=lone_claimed.set)

    def batch(own: Session) -> None:
        enrolling.process_batch(own, clock.now(), list(own.exec(select(Signal).order_by(Signal.id))))

    def lone(own: Session) -> None:
        enrolling.process(own, clock.now(), own.get(Signal, first))

    threads = [run_side(db_url, batch_side, batch, errors), run_side(db_url, lone_side, lone, errors)]
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    session.expire_all()
    assert len(session.exec(select(Enrollment)).all()) == 1
    assert [s.processed_at is not None for s in session.exec(select(Signal).order_by(Signal.id))] == [True, True]
    assert {s.id for s in session.exec(select(Signal))} == {first, second}


def test_two_batches_creating_the_same_prospects_in_opposite_orders_retry_instead_of_failing(
    session: Session, clock: SimulatedClock, tmp_path: Path, db_url: str
) -> None:
    """A real deadlock (each batch inserts one new prospect, then the other's): PostgreSQL kills
    one transaction; that batch is retried and finds what the other stored."""
    load_sequence(session, clock, tmp_path)
    ids = store(session, clock, "x@one.example", "y@two.example", "y@two.example", "x@one.example")
    one, other = [ids[0], ids[1]], [ids[2], ids[3]]  # one: x then y; other: y then x
    inserted = [threading.Event(), threading.Event()]
    errors: list[BaseException] = []

    def side(me: int) -> Callable[[Engine], None]:
        def prepare(engine: Engine) -> None:  # after my first prospect, wait for the other's first
            on_statement(engine, "INSERT INTO prospect",
                         after=lambda: (inserted[me].set(), inserted[1 - me].wait(MEETING)))
        return prepare

    def work(signal_ids: list[int]) -> Callable[[Session], None]:
        def run(own: Session) -> None:
            batch = list(own.exec(select(Signal).where(Signal.id.in_(signal_ids)).order_by(Signal.id)))
            enrolling.process_batch(own, clock.now(), batch)
        return run

    threads = [run_side(db_url, side(0), work(one), errors), run_side(db_url, side(1), work(other), errors)]
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    session.expire_all()
    assert sorted(p.email for p in session.exec(select(Prospect))) == ["x@one.example", "y@two.example"]
    assert len(session.exec(select(Enrollment)).all()) == 2
    assert signals.unprocessed(session) == []
