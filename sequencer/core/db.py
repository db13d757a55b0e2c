"""Database engines and sessions for SQLite (the embedded default) and PostgreSQL.

The schema is owned by Alembic (``sequencer/migrations``); ``migrate`` brings any
database to the newest revision and is what every entry point calls first.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, create_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
T = TypeVar("T")


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and enforced foreign keys."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return create_engine(url, pool_pre_ping=True)


# PostgreSQL's codes for a transaction that lost a lock: deadlock victim, lock timeout,
# serialization failure. SQLite says "database is locked" once its busy timeout runs out.
_LOCK_CONFLICTS = {"40P01", "55P03", "40001"}


def is_lock_conflict(exc: OperationalError) -> bool:
    """Whether ``exc`` means another transaction held what this one needed (retrying later may pass)."""
    return getattr(exc.orig, "sqlstate", None) in _LOCK_CONFLICTS or "database is locked" in str(exc.orig)


def chunks(values: Sequence[T], size: int = 500) -> Iterator[Sequence[T]]:
    """``values`` in slices of ``size``, so an ``IN`` list stays well under every driver's
    limit on parameters."""
    for start in range(0, len(values), size):
        yield values[start:start + size]


def migrate(engine: Engine) -> None:
    """Upgrade the database behind ``engine`` to the newest schema revision."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def session(engine: Engine) -> Session:
    """A session that keeps loaded objects usable after commit."""
    return Session(engine, expire_on_commit=False)
