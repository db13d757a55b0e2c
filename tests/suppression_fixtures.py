"""Shared set-up for the suppression tests: a migrated tmp SQLite file, a live server.

Plain functions and context managers rather than fixtures, so each test module states
its own fixtures and nothing is registered behind the reader's back.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from sequencer.core.db import make_engine, migrate
from sequencer.core.db import session as new_session
from suppression.models import SuppressionEntry

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
SECRET = "test-secret-0123456789"


def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sequencer.db'}"


def migrated_engine(tmp_path: Path) -> Engine:
    """A fresh database file with the real schema, as every entry point builds it."""
    engine = make_engine(database_url(tmp_path))
    migrate(engine)
    return engine


def all_entries(engine: Engine) -> list[SuppressionEntry]:
    """Every stored entry, read through a new session so nothing cached is reported."""
    with new_session(engine) as session:
        return list(session.exec(select(SuppressionEntry).order_by(SuppressionEntry.id)))


def open_session(engine: Engine) -> Session:
    return new_session(engine)


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with a real uvicorn on a free loopback port; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
