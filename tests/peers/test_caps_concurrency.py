"""Caps hold with many workers at once: the counter and the send decision are one database step.

Each worker below has its own engine, connection and session, as separate Celery workers
would, and they start together behind a barrier. The database is the only arbiter, so
the totals must come out at exactly the cap, never more, round after round.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from engine_support import add_prospect, fire, prepare, write_templates
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import text
from sqlmodel import Session, SQLModel, select

from channels.email import SmtpSender
from sequencer.app.wiring import build as build_runtime
from sequencer.core.config import REPO_TEMPLATES, Settings
from sequencer.core.db import make_engine
from sequencer.core.db import session as new_session
from sequencer.core.models import CapCounter, Decision, Enrollment, Mailbox, Touch
from sequencer.engine.tick import tick
from sequencer.sending import caps

WORKERS = 8
TODAY = date(2026, 11, 30)


@pytest.fixture
def pg_url(pg_database: str) -> Iterator[str]:
    """The test run's PostgreSQL database, emptied (the counter races use fresh keys instead)."""
    engine = make_engine(pg_database)
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    yield pg_database


def _together(workers: int, work: Callable[[Session], None], url: str) -> None:
    """Run ``work`` in ``workers`` threads, each on its own engine and session, started at once."""
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def run() -> None:
        engine = make_engine(url)
        try:
            with new_session(engine) as session:
                barrier.wait()
                work(session)
        except BaseException as exc:
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def _used(url: str, keys: list[str]) -> dict[str, int]:
    engine = make_engine(url)
    with new_session(engine) as session:
        rows = dict(session.exec(select(CapCounter.key, CapCounter.used).where(CapCounter.key.in_(keys))).all())
    engine.dispose()
    return rows


def _race_reservations(url: str, guarded: list[caps.Cap], attempts: int) -> int:
    """Every worker tries ``attempts`` sends; returns how many were committed in total."""
    committed: list[int] = []

    def work(session: Session) -> None:
        for _ in range(attempts):
            if caps.reserve(session, guarded) is None:
                time.sleep(0.001)  # hold the row locks a moment, as rendering a touch would
                session.commit()
                committed.append(1)
            else:
                session.rollback()

    _together(WORKERS, work, url)
    return len(committed)


@pytest.mark.parametrize("round_", range(4))
def test_concurrent_reservations_never_pass_the_cap(pg_database, round_):
    key = f"mailbox:{uuid.uuid4().hex}:{TODAY}"
    cap = caps.Cap(key, 25, "mailbox cap (25/day)", TODAY)

    committed = _race_reservations(pg_database, [cap], attempts=6)  # 48 tries for 25 places

    assert committed == 25
    assert _used(pg_database, [key]) == {key: 25}


@pytest.mark.parametrize("round_", range(3))
def test_when_a_later_cap_binds_the_earlier_counters_are_rolled_back_with_it(pg_database, round_):
    run = uuid.uuid4().hex
    mailbox = caps.Cap(f"mailbox:{run}", 30, "mailbox cap (30/day)", TODAY)
    domain = caps.Cap(f"domain:{run}", 100, "sending domain cap (100/day)", TODAY)
    recipient = caps.Cap(f"recipient:{run}", 12, "recipient domain cap (12/day)", TODAY)

    committed = _race_reservations(pg_database, [mailbox, domain, recipient], attempts=5)

    assert committed == 12
    assert _used(pg_database, [mailbox.key, domain.key, recipient.key]) == {
        mailbox.key: 12, domain.key: 12, recipient.key: 12,
    }


def test_only_one_of_many_workers_takes_a_mailboxs_send_slot(pg_database):
    engine = make_engine(pg_database)
    with new_session(engine) as session:
        mailbox = Mailbox(address=f"{uuid.uuid4().hex}@outreach-acme.example", sending_domain="outreach-acme.example")
        session.add(mailbox)
        session.commit()
        mailbox_id = mailbox.id
    engine.dispose()
    now = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    taken: list[int] = []

    def work(session: Session) -> None:
        own = session.get(Mailbox, mailbox_id)
        if caps.take_gap(session, own, now, 120):
            taken.append(1)
        session.commit()

    _together(WORKERS, work, pg_database)

    assert len(taken) == 1


# --- full engine ticks racing over one capped mailbox ------------------------------------------

SEQUENCE = """\
name: outbound
owner: sam.sdr@acme.example
trigger:
  signals: [intent_surge]
window: {days: mon-fri, start: "08:00", end: "17:00"}
mailboxes: [sam@outreach-acme.example]
steps:
  - id: first
    kind: email
    subject: "Hello {{ prospect.first_name }}"
    template: first.j2
"""
TICKERS = 6
CAP = 10
PROSPECTS = 40
DAYS = 2


def _sam_settings(pg_url: str, smtp) -> Settings:
    """One mailbox with a daily cap of CAP, sending to the loopback server."""
    return Settings(
        database_url=pg_url, templates_dir=REPO_TEMPLATES, secret_key="test-secret",
        mailboxes=[{"address": "sam@outreach-acme.example", "display_name": "Sam", "smtp_host": smtp.host,
                    "smtp_port": smtp.port, "daily_cap": CAP}],
    )


def _two_due(session: Session, now: datetime, settings: Settings, tmp_path) -> None:
    """The one-email sequence loaded, and two prospects enrolled by a signal each."""
    prepare(session, now, settings, write_templates(tmp_path / "templates", SEQUENCE))
    for i in range(2):
        add_prospect(session, now, f"p{i}@company{i}.example")
        fire(session, now, "intent_surge", email=f"p{i}@company{i}.example", score=80)


def _impatient_engine(pg_url: str):
    """An engine whose connections give up on a row lock after 300 ms, as a deadlock victim would."""
    engine = make_engine(pg_url)
    sqlalchemy_event.listen(engine, "connect", lambda connection, _: connection.execute("SET lock_timeout = '300ms'"))
    return engine


def test_six_concurrent_tickers_send_exactly_the_cap_each_day_and_defer_the_rest(tmp_path, pg_url, smtp):
    settings = _sam_settings(pg_url, smtp)
    monday = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    wednesday_window = datetime(2026, 12, 2, 13, 0, tzinfo=UTC)
    engine = make_engine(pg_url)
    with new_session(engine) as session:
        prepare(session, monday, settings, write_templates(tmp_path / "templates", SEQUENCE))
        for i in range(PROSPECTS):
            add_prospect(session, monday, f"p{i}@company{i}.example")
            fire(session, monday, "intent_surge", email=f"p{i}@company{i}.example", score=80)
        mailbox_id = session.exec(select(Mailbox.id)).one()

    sent_per_day = []
    for day in range(DAYS):  # each day a new round, in the New York morning window
        now = monday if day == 0 else monday + timedelta(days=day, hours=-2)

        def ticker(session: Session, now: datetime = now) -> None:
            sender = SmtpSender(timeout=5)
            try:
                tick(session, _Fixed(now), build_runtime(settings, sender, check_domains=False))
            finally:
                sender.close()

        before = len(smtp.messages)
        _together(TICKERS, ticker, pg_url)
        sent_per_day.append(len(smtp.messages) - before)
        key = f"mailbox:{mailbox_id}:{now.date()}"
        assert _used(pg_url, [key]) == {key: CAP}

    assert sent_per_day == [CAP] * DAYS
    recipients = [r for m in smtp.messages for r in m.rcpt_tos]
    assert len(set(recipients)) == len(recipients) == CAP * DAYS  # nobody twice
    with new_session(engine) as session:
        assert len(session.exec(select(Touch).where(Touch.state == "sent")).all()) == CAP * DAYS
        deferrals = session.exec(select(Decision).where(Decision.kind == "deferred")).all()
        assert len(deferrals) == 30 + 20  # each waiting enrollment deferred once a day, no more
        waiting = session.exec(select(Enrollment).where(Enrollment.current_step == 0)).all()
        assert len(waiting) == PROSPECTS - CAP * DAYS
        assert {(e.state, e.next_due_at) for e in waiting} == {("active", wednesday_window)}
        cap = f"mailbox sam@outreach-acme.example daily cap ({CAP}/day) reached"
        # choose() saw the cap full, or reserve() found it full after choose() saw room
        assert {d.reason for d in deferrals} <= {f"no mailbox can send: sam@outreach-acme.example: {cap}", cap}
    engine.dispose()


class _Fixed:
    def __init__(self, moment: datetime) -> None:
        self._moment = moment

    def now(self) -> datetime:
        return self._moment


def test_a_claim_that_cannot_take_a_lock_leaves_the_batch_for_the_next_tick(tmp_path, pg_url, smtp):
    """Another worker holds a counter's row lock past this worker's lock timeout (as when
    PostgreSQL breaks a deadlock): the batch is rolled back whole, nothing is sent or
    counted, and the next tick sends it once."""
    settings = _sam_settings(pg_url, smtp)
    monday = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    engine = _impatient_engine(pg_url)
    holder = make_engine(pg_url)
    sender = SmtpSender(timeout=5)
    try:
        with new_session(engine) as session:
            _two_due(session, monday, settings, tmp_path)
            key = f"mailbox:{session.exec(select(Mailbox.id)).one()}:{monday.date()}"
            with holder.connect() as other:  # holds the mailbox counter's row lock, uncommitted
                other.execute(text("INSERT INTO capcounter (key, used, cap_limit, expires_on) "
                                   "VALUES (:key, 0, 10, :day)"), {"key": key, "day": monday.date()})
                report = tick(session, _Fixed(monday), build_runtime(settings, sender, check_domains=False))
                other.rollback()

            assert report.outcomes == {"lost_race": 2} and smtp.messages == []
            assert session.exec(select(Touch)).all() == [] and _used(pg_url, [key]) == {}
            runtime = build_runtime(settings, sender, check_domains=False)
            assert tick(session, _Fixed(monday), runtime).outcomes == {"sent": 2}
            assert len(smtp.messages) == 2 and _used(pg_url, [key]) == {key: 2}
    finally:
        sender.close()
        holder.dispose()
        engine.dispose()


def test_a_record_that_cannot_take_a_lock_is_made_again_and_nothing_sent_is_lost(tmp_path, pg_url, smtp):
    """While the emails are out, another worker locks an enrollment the record must move
    on; the record hits the lock timeout, is undone, and is made again once the lock is
    gone: every sent email is recorded as sent, once."""
    settings = _sam_settings(pg_url, smtp)
    monday = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    engine = _impatient_engine(pg_url)
    timed_out = threading.Event()
    sqlalchemy_event.listen(engine, "handle_error", lambda context: timed_out.set())
    holder = make_engine(pg_url)
    locked = threading.Event()

    def hold_the_first_enrollment() -> None:  # another worker, from the moment the first email arrives
        with holder.connect() as other:
            other.execute(text("SELECT id FROM enrollment ORDER BY id LIMIT 1 FOR UPDATE"))
            locked.set()
            timed_out.wait(10)
            other.rollback()

    receive = smtp.handler.handle_DATA

    async def on_data(server, session, envelope):
        if not locked.is_set():
            threading.Thread(target=hold_the_first_enrollment, daemon=True).start()
            locked.wait(5)
        return await receive(server, session, envelope)

    smtp.handler.handle_DATA = on_data
    sender = SmtpSender(timeout=5)
    try:
        with new_session(engine) as session:
            _two_due(session, monday, settings, tmp_path)

            report = tick(session, _Fixed(monday), build_runtime(settings, sender, check_domains=False))

            assert timed_out.is_set()  # the first record did meet the lock
            assert report.outcomes == {"sent": 2} and len(smtp.messages) == 2
            session.expire_all()
            assert [t.state for t in session.exec(select(Touch))] == ["sent", "sent"]
            assert len(session.exec(select(Decision).where(Decision.kind == "sent")).all()) == 2
            assert {e.state for e in session.exec(select(Enrollment))} == {"finished"}
    finally:
        sender.close()
        holder.dispose()
        engine.dispose()
