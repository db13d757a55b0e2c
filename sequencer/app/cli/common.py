"""What every CLI command needs: settings, a migrated database session, a console."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from sqlalchemy.engine import make_url
from sqlmodel import Session

from sequencer.core.config import ConfigError, Settings, load_settings, resolve_templates
from sequencer.core.db import make_engine, migrate
from sequencer.core.db import session as new_session
from sequencer.core.yaml_source import SourceError
from sequencer.sequences.signal_types import known_types

console = Console()
err_console = Console(stderr=True)


def settings(templates: Path | None = None) -> Settings:
    """The settings, with ``templates`` (a command's ``--templates``) first in resolve_templates' order."""
    try:
        return resolve_templates(load_settings(), templates)
    except ConfigError as exc:
        fail(str(exc))
        raise  # unreachable; keeps type checkers calm


def say_templates(config: Settings, root: Path | None = None) -> None:
    """Tell the SDR which templates folder a command read, and why that one (on stderr)."""
    origin = "the command line" if root is not None else config.templates_origin
    err_console.print(f"templates: {root or config.templates_dir} ({origin})", highlight=False, soft_wrap=True)


def signal_types(config: Settings) -> frozenset[str]:
    """The workspace's signal types, or exit naming the declaration that is wrong."""
    try:
        return known_types(config)
    except SourceError as exc:
        fail_source(exc, "the declared signal types cannot be read")
        raise  # unreachable


def fail_source(exc: SourceError, summary: str) -> None:
    """Print every file:line problem, then exit non-zero with ``summary``."""
    for error in exc.errors:
        console.print(f"[red]{error}[/red]", highlight=False, soft_wrap=True, markup=True)
    fail(summary)


@contextmanager
def open_session(config: Settings | None = None) -> Iterator[Session]:
    """A session on the configured database, upgraded to the newest schema first."""
    config = config or settings()
    engine = make_engine(config.database_url)
    migrate(engine)
    with new_session(engine) as session:
        yield session
    engine.dispose()


def database_exists(config: Settings) -> bool:
    """False for a SQLite file not made yet: a read-only command must not create one in a fresh folder."""
    url = make_url(config.database_url)
    return not (url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists())


def fail(message: str, code: int = 1) -> None:
    """Print an error to stderr and exit non-zero."""
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def print_json(data: object) -> None:
    """``--json`` output of every list and show command: indented, UTF-8 as it is, nothing
    else on stdout, so a script can parse it (datetimes and other values as their text)."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
