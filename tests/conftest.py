"""Shared fixtures: databases (SQLite and real PostgreSQL), a loopback SMTP server, a clock.

PostgreSQL is the server at 127.0.0.1:5432 (override with SEQUENCER_TEST_PG); each test
run creates its own database and drops it at the end. When PostgreSQL is not reachable
the PostgreSQL variants are skipped locally but fail under CI (CI=true), so a CI run can
never pass without having exercised the distributed path.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import redis
from hypothesis import settings as hypothesis_settings
from loopback_faults import FaultySmtpServer
from peers import missing_peer
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from sequencer.core.clock import SimulatedClock
from sequencer.core.config import REPO_TEMPLATES, Settings
from sequencer.core.db import make_engine, migrate
from sequencer.core.db import session as new_session
from sequencer.loopback.smtp_server import LocalSmtpServer

PG_ADMIN = os.environ.get("SEQUENCER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
MONDAY = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # 10:00 New York, 16:00 Berlin

# Under CI the property tests draw the same examples on every run, so CI turns red for a
# change and not for a draw; on a developer's machine they keep exploring (and remember
# what failed in .hypothesis/).
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


def _pg_available() -> str:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return ""
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, migrated once."""
    problem = _pg_available()
    if problem:
        missing_peer(f"PostgreSQL not reachable: {problem}")
    name = f"sequencer_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    yield url
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _truncate(engine: Engine) -> None:
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'sequencer.db'}"
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        yield url
        return
    url = request.getfixturevalue("pg_database")
    engine = make_engine(url)
    _truncate(engine)
    engine.dispose()
    yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'sequencer.db'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with new_session(engine) as session:
        yield session


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(MONDAY)


@pytest.fixture
def smtp() -> Iterator[FaultySmtpServer]:
    with FaultySmtpServer() as server:
        yield server


@pytest.fixture
def settings(smtp: LocalSmtpServer, db_url: str) -> Settings:
    return Settings(
        database_url=db_url,
        templates_dir=REPO_TEMPLATES,
        primary_domain="acme.example",
        secret_key="test-secret-0123456789abcdefghij",  # 32 characters: signing_secret() wants 16 or more
        unsubscribe_url="https://go.outreach-acme.example/u",
        mailboxes=[
            {"address": "sam@outreach-acme.example", "display_name": "Sam Rivera", "owner": "sam.sdr@acme.example",
             "smtp_host": smtp.host, "smtp_port": smtp.port, "daily_cap": 100},
            {"address": "jo@outreach-acme.example", "display_name": "Jo Tanaka", "owner": "jo.sdr@acme.example",
             "smtp_host": smtp.host, "smtp_port": smtp.port, "daily_cap": 100},
        ],
    )


TIERS = ("unit", "peers", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier, the folder it lives in: ``pytest -m unit`` runs in seconds."""
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in TIERS:
            item.add_marker(tier)


# --- Redis: one numbered database per test run ------------------------------------------------

REDIS_SERVER = os.environ.get("SEQUENCER_TEST_REDIS", "redis://127.0.0.1:6379")
TEST_DATABASES = range(9, 16)  # Redis' numbered databases this suite may take, one per test run

# Take over a claim only if it still names the dead run we saw (two runs may find it at once).
_TAKE_OVER = "if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('set', KEYS[1], ARGV[2], 'EX', 3600) " \
             "return 1 else return 0 end"


def _alive(pid: bytes | None) -> bool:
    """Whether the run that claimed a database still runs (Redis is on this machine, so its pid means here)."""
    try:
        os.kill(int(pid or 0), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return int(pid or 0) > 0


def _claim(claims: redis.Redis, number: int) -> bool:
    key, me = f"sequencer-tests:db{number}", str(os.getpid())
    if claims.set(key, me, nx=True, ex=3600):
        return True
    holder = claims.get(key)
    return not _alive(holder) and bool(claims.eval(_TAKE_OVER, 1, key, holder or b"", me))


@pytest.fixture(scope="session")
def redis_database() -> Iterator[str]:
    """A Redis database of this test run's own: two runs at once (two checkouts on one machine)
    would otherwise take each other's tasks and flush each other's queues. Claimed by a key in
    database 0 that ends with the run; a claim whose run died (killed, interrupted) is taken over."""
    claims = redis.Redis.from_url(f"{REDIS_SERVER}/0", socket_connect_timeout=2)
    try:
        number = next((n for n in TEST_DATABASES if _claim(claims, n)), None)
    except redis.RedisError as exc:
        missing_peer(f"Redis not reachable at {REDIS_SERVER}: {exc}")
    if number is None:
        pytest.fail(f"Redis databases {TEST_DATABASES.start}-{TEST_DATABASES.stop - 1} are all taken by other runs")
    yield f"{REDIS_SERVER}/{number}"
    claims.delete(f"sequencer-tests:db{number}")
