"""``sequencer run``: the embedded loop (ticks, plus housekeeping every 15 minutes)."""

from __future__ import annotations

import time
from datetime import timedelta

import typer

from sequencer.app import housekeeping
from sequencer.app import wiring as runtime
from sequencer.app.cli.common import console, fail, open_session, settings
from sequencer.core.clock import SystemClock
from sequencer.core.config import ConfigError, signing_secret
from sequencer.core.yaml_source import SourceError
from sequencer.engine.tick import tick
from sequencer.meetings import reminders
from sequencer.sending import mailboxes
from sequencer.sequences.versions import sync

HOUSEKEEPING_EVERY = timedelta(minutes=15)


def _prepare(session, config) -> None:
    now = SystemClock().now()
    try:
        sync(session, now, config.templates_dir)
        mailboxes.sync_from_settings(session, config, now.date())
    except SourceError as exc:
        for error in exc.errors:
            console.print(f"[red]{error}[/red]", highlight=False, soft_wrap=True)
        fail("refusing to run with a broken sequence")
    except mailboxes.MailboxError as exc:
        fail(str(exc))


def run_command(
    interval: float = typer.Option(5.0, help="Seconds between ticks."),
    once: bool = typer.Option(False, "--once", help="Run a single tick and exit."),
) -> None:
    """The embedded scheduler: tick forever (Ctrl-C stops it between ticks). Needs a secret_key."""
    config = settings()
    try:
        signing_secret(config)  # every email carries a signed unsubscribe link
    except ConfigError as exc:
        fail(f"refusing to run: {exc}")
    engine_runtime = runtime.build(config)
    clock = SystemClock()
    with open_session(config) as session:
        _prepare(session, config)
        chores_due = clock.now()
        try:
            while True:
                if clock.now() >= chores_due:
                    for line in housekeeping.run(session, clock.now(), config):
                        console.print(f"{clock.now():%H:%M:%S} {line}", highlight=False)
                    chores_due = clock.now() + HOUSEKEEPING_EVERY
                report = tick(session, clock, engine_runtime)
                if report.advanced or report.signals:
                    console.print(f"{clock.now():%H:%M:%S} signals {report.signals}, steps {report.outcomes}")
                # Meetings: reminders to prospects and overdue acceptances, each sent once.
                for line in reminders.run_due(session, clock.now(), config, engine_runtime.sender,
                                              engine_runtime.domain_problem):
                    console.print(f"{clock.now():%H:%M:%S} {line}", highlight=False)
                if once:
                    break
                time.sleep(interval)
        except KeyboardInterrupt:
            console.print("stopped")
        finally:
            engine_runtime.sender.close()
