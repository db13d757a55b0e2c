"""``sequencer worker``: the distributed deployment's Celery worker, with beat by default."""

from __future__ import annotations

import os

import typer

from sequencer.app.cli.common import fail, settings
from sequencer.core.config import ConfigError, signing_secret


def default_name() -> str:
    """A node name unique per process: Celery warns about duplicate node names, and two
    workers on one host would otherwise both be ``celery@host``. ``%h`` is Celery's host name."""
    return f"sequencer-{os.getpid()}@%h"


def worker_argv(concurrency: int, beat: bool, loglevel: str, name: str = "") -> list[str]:
    """The ``celery worker`` arguments for these options (kept apart so they can be read)."""
    argv = ["worker", f"--concurrency={concurrency}", f"--loglevel={loglevel}", f"--hostname={name or default_name()}"]
    return [*argv, "--beat"] if beat else argv


def worker_command(
    concurrency: int = typer.Option(
        2, min=1, help="Worker processes (each sends one touch at a time)."
    ),
    beat: bool = typer.Option(
        True, help="Also run the beat scheduler (tick, domain refresh); run it on one host only."
    ),
    loglevel: str = typer.Option("info", help="debug, info, warning or error."),
    name: str = typer.Option(
        "", "--name", help="Celery node name, e.g. worker1@%h (default: sequencer-<pid>@<host>, unique per process)."
    ),
) -> None:
    """Run a Celery worker for the engine; the broker is SEQUENCER_BROKER_URL.

    Beat is on by default so a single host is a complete deployment. Extra hosts should
    pass --no-beat: duplicate ticks are harmless (the database decides) but wasteful.
    Needs a secret_key: the workers send emails with signed unsubscribe links.
    """
    if name and "@" not in name:
        fail(f"--name: {name!r} must be NAME@HOST (use %h for this host's name)")
    try:
        signing_secret(settings())  # before Celery starts, so the message is the last thing printed
    except ConfigError as exc:
        fail(f"refusing to start a worker: {exc}")
    from sequencer.app.celery_app import app  # reads the settings only when a worker starts

    app.worker_main(worker_argv(concurrency, beat, loglevel, name))
