"""The distributed deployment: a thin Celery shell over the same engine the embedded loop runs.

The database is the truth and Redis only carries messages. Every task opens a session
and calls the functions ``sequencer run`` calls (``engine.tick``,
``enrolling.process``, ``housekeeping.run``); no task decides anything
itself. A lost or duplicated message therefore costs nothing: ``tick`` re-finds due
work and unprocessed signals from the database, and every step is claimed there.

Start a worker with ``sequencer worker`` or ``celery -A sequencer.app.celery_app worker -B``.
Settings come from ``load_settings()`` (``SEQUENCER_BROKER_URL`` names the broker); the
beat interval of ``tick`` is ``SEQUENCER_TICK_SECONDS`` (default 10). A worker refuses to
start without a usable ``secret_key`` (``config.signing_secret``); importing this module to
send tasks needs none.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_process_init, worker_process_shutdown
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from channels.email import SmtpSender
from channels.outbox import OutboxSender
from sequencer.app import housekeeping
from sequencer.app import wiring as runtime
from sequencer.core import db
from sequencer.core.clock import SystemClock
from sequencer.core.config import ConfigError, Settings, load_settings, signing_secret
from sequencer.core.models import Signal
from sequencer.core.yaml_source import SourceError
from sequencer.engine import tick as engine
from sequencer.engine.runtime import Runtime
from sequencer.inbound import mailbox_poll
from sequencer.intake import signals
from sequencer.meetings import reminders
from sequencer.sending import mailboxes
from sequencer.sequences import versions, vocabulary

log = logging.getLogger(__name__)

TICK_TASK = "sequencer.tick"
INGEST_TASK = "sequencer.ingest_signal"
REFRESH_DOMAINS_TASK = "sequencer.refresh_domains"
MEETINGS_TASK = "sequencer.meetings_due"
INBOUND_POLL_TASK = "sequencer.inbound_poll"
MEETINGS_SECONDS = 60.0  # reminders are due at 24 h and 1 h before a meeting: a minute late is on time
TICK_SECONDS = float(os.environ.get("SEQUENCER_TICK_SECONDS", "10"))
DOMAIN_REFRESH_SECONDS = 15 * 60
INGEST_BATCH = 200  # waiting signals an ingest task takes with its own

# PostgreSQL advisory lock keys (any fixed 64-bit numbers unique to this application).
MIGRATE_LOCK = 0x5E9_0002  # held while the schema is upgraded

settings: Settings = load_settings()

app = Celery("sequencer")
app.conf.update(
    broker_url=settings.broker_url,
    # Results are only a convenience for callers that wait on a tick; they expire soon.
    result_backend=settings.broker_url,
    result_expires=3600,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    beat_schedule={
        "tick": {
            "task": TICK_TASK,
            "schedule": TICK_SECONDS,
            # A tick queued while no worker ran is stale once the next one is due.
            "options": {"expires": TICK_SECONDS},
        },
        "refresh-domains": {
            "task": REFRESH_DOMAINS_TASK,
            "schedule": float(DOMAIN_REFRESH_SECONDS),
            "options": {"expires": float(DOMAIN_REFRESH_SECONDS)},
        },
        "meetings-due": {
            "task": MEETINGS_TASK,
            "schedule": MEETINGS_SECONDS,
            "options": {"expires": MEETINGS_SECONDS},
        },
        **({"inbound-poll": {  # replies and bounces over IMAP, every mailbox with IMAP settings
            "task": INBOUND_POLL_TASK,
            "schedule": settings.imap_poll_seconds,
            "options": {"expires": settings.imap_poll_seconds},
        }} if settings.imap_poll_seconds else {}),
    },
)


class _Process:
    """What one worker process keeps between tasks; reset after every fork."""

    db_engine: Engine | None = None
    sender: SmtpSender | OutboxSender | None = None
    engine_runtime: Runtime | None = None
    prepared: bool = False

    @classmethod
    def reset(cls) -> None:
        if cls.db_engine is not None:
            cls.db_engine.dispose(close=False)  # the parent's connections are not ours to close
        cls.db_engine, cls.sender, cls.engine_runtime, cls.prepared = None, None, None, False


def _engine() -> Engine:
    if _Process.db_engine is None:
        _Process.db_engine = db.make_engine(settings.database_url)
    return _Process.db_engine


def _runtime() -> Runtime:
    """One runtime and one SMTP sender per process, so SMTP connections are reused."""
    if _Process.engine_runtime is None:
        signing_secret(settings)  # a task never signs a link with a secret a worker would refuse
        _Process.sender = runtime.sender_for(settings)  # the sandbox's Maildir when sandbox = true
        _Process.engine_runtime = runtime.build(settings, sender=_Process.sender)
    return _Process.engine_runtime


@worker_init.connect
def _refuse_without_a_secret(**_: Any) -> None:
    """Stop ``celery -A sequencer.app.celery_app worker`` before it consumes anything.

    Celery logs and swallows an Exception from a signal handler, so this raises SystemExit,
    which it lets through; connected first, it runs before the migration below.
    """
    try:
        signing_secret(settings)
    except ConfigError as exc:
        log.critical("refusing to start a worker: %s", exc)
        raise SystemExit(1) from exc


@worker_init.connect
def _migrate_before_forking(**_: Any) -> None:
    """Upgrade the schema once in the main worker process; many hosts take turns."""
    main_engine = db.make_engine(settings.database_url)
    try:
        with _exclusive(main_engine, MIGRATE_LOCK):
            db.migrate(main_engine)
    finally:
        main_engine.dispose()


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    _Process.reset()


@worker_process_shutdown.connect
def _close_connections(**_: Any) -> None:
    if _Process.sender is not None:
        _Process.sender.close()
    if _Process.db_engine is not None:
        _Process.db_engine.dispose()


@contextmanager
def _exclusive(bound: Engine, key: int) -> Iterator[None]:
    """Hold a PostgreSQL advisory lock (workers on several hosts take turns migrating).

    The lock lives on its own connection, so a worker that dies releases it with the
    connection. SQLite has no such lock; a SQLite deployment has a single host anyway.
    """
    if bound.dialect.name != "postgresql":
        yield
        return
    with bound.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        connection.commit()  # a session-level lock outlives the transaction
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()


def _prepare_once(session: Session) -> None:
    """Sync sequence files and mailboxes into the database once per process.

    Runs before the first signal or step a process handles, so a fresh deployment never
    processes a signal against an empty set of versions. As with ``sequencer run``, an
    edited sequence file takes effect when the workers restart. A broken sequence file
    is refused loudly: the task fails and the next one tries again.
    """
    if _Process.prepared:
        return
    now = SystemClock().now()
    try:
        versions.sync(session, now, settings.templates_dir,
                      vocabulary.for_workspace(settings, settings.templates_dir, session))
    except SourceError as exc:
        for error in exc.errors:
            log.error("%s", error)
        log.error("refusing to run with a broken sequence in %s", settings.templates_dir)
        raise
    mailboxes.sync_from_settings(session, settings, now.date())
    _Process.prepared = True


@app.task(name=TICK_TASK)
def tick() -> dict[str, Any]:
    """Run ``engine.tick`` once. Ticks may overlap across workers: every step is a
    compare-and-set on its enrollment and a touch is unique per (enrollment, step), so
    overlapping ticks share the due work instead of doing it twice."""
    with db.session(_engine()) as session:
        _prepare_once(session)
        report = engine.tick(session, SystemClock(), _runtime())
    if report.signals or report.advanced:
        log.info("tick: signals %d, steps %s", report.signals, report.outcomes)
    return {"signals": report.signals, "advanced": report.advanced, "outcomes": report.outcomes}


@app.task(name=INGEST_TASK)
def ingest_signal(signal_ids: int | list[int]) -> str:
    """Act on stored signals now instead of at the next tick; repeating it is a no-op.

    The HTTP API sends the ids once they are committed (stored before enqueued: a lost
    message leaves them unprocessed, and the tick finds them). ``engine.act_on_signals``
    processes them and sends at once the first emails they made due; a deadlock or a
    race with another worker is retried inside, never a failed task.
    """
    ids = [signal_ids] if isinstance(signal_ids, int) else [int(i) for i in signal_ids]
    with db.session(_engine()) as session:
        fresh = session.exec(select(Signal.id).where(Signal.id.in_(ids), Signal.processed_at.is_(None))).all()
        if not fresh:
            known = session.exec(select(Signal.id).where(Signal.id.in_(ids))).first()
            if known is None:
                log.warning("signals %s are not in the database; nothing to do", ids)
                return "missing"
            return "already_processed"
        _prepare_once(session)
        # Under load, take the others waiting too (their own messages then find them done):
        # one pass for many signals instead of one task each, so processing keeps up in batches.
        # Skipping the rows another worker holds, so two workers take two batches, not one batch by turns.
        waiting = [signal.id for signal in signals.unprocessed(session, INGEST_BATCH, skip_locked=True)]
        report = engine.act_on_signals(session, SystemClock(), _runtime(), sorted({*fresh, *waiting}))
    log.info("signals %s: steps %s", ids, report.outcomes)
    return "processed"


@app.task(name=REFRESH_DOMAINS_TASK)
def refresh_domains() -> list[str]:
    """Housekeeping: refresh expired sending-domain verdicts, drop old cap counters."""
    with db.session(_engine()) as session:
        return housekeeping.run(session, SystemClock().now(), settings)


@app.task(name=INBOUND_POLL_TASK)
def inbound_poll() -> list[str]:
    """Poll every mailbox's IMAP folder once (``mailbox_poll.poll_all``); overlapping polls take turns."""
    with db.session(_engine()) as session:
        _prepare_once(session)
        lines = mailbox_poll.poll_all(session, lambda: SystemClock().now(), settings)
    for line in lines:
        log.info("%s", line)
    return lines


@app.task(name=MEETINGS_TASK)
def meetings_due() -> list[str]:
    """Meetings: reminders to prospects and overdue acceptance chases, each once (``reminders.run_due``);
    overlapping runs share the work, as every reminder is claimed by its unique key first."""
    engine_runtime = _runtime()
    with db.session(_engine()) as session:
        _prepare_once(session)
        return reminders.run_due(session, SystemClock().now(), settings, engine_runtime.sender,
                                 engine_runtime.domain_problem)
