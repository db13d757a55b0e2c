"""What every CLI command needs: settings, a migrated database session, a console."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from sqlmodel import Session

from sequencer.core.config import ConfigError, Settings, load_settings
from sequencer.core.db import make_engine, migrate
from sequencer.core.db import session as new_session

console = Console()
err_console = Console(stderr=True)


def settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        fail(str(exc))
        raise  # unreachable; keeps type checkers calm


@contextmanager
def open_session(config: Settings | None = None) -> Iterator[Session]:
    """A session on the configured database, upgraded to the newest schema first."""
    config = config or settings()
    engine = make_engine(config.database_url)
    migrate(engine)
    with new_session(engine) as session:
        yield session
    engine.dispose()


def fail(message: str, code: int = 1) -> None:
    """Print an error to stderr and exit non-zero."""
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)
