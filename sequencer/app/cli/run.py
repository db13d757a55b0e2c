"""``sequencer run``: the embedded loop (ticks, IMAP polling every imap_poll_seconds, housekeeping every 15 minutes).

Between ticks the loop probes for a newly stored signal every ``WAKE_PROBE_SECONDS`` (one
lookup in the partial index of unprocessed signals) and acts on it at once
(``act_on_signals``: its first email, if due, goes out in that pass), so speed to lead is
a fraction of a second, not the tick interval. The probe reads the database, so a signal
stored by any process (``sequencer serve``, an import) wakes it; so does an enrollment that
another process created (``sequencer signal`` enrolls by itself): the loop then ticks at
once, and the new enrollment's first email goes out.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import typer
from sqlalchemy import func
from sqlmodel import select

from sequencer.app import housekeeping
from sequencer.app import wiring as runtime
from sequencer.app.cli.common import console, fail, open_session, say_templates, settings
from sequencer.app.cli.sequences import TEMPLATES_OPTION, workspace_vocabulary
from sequencer.core.clock import SystemClock
from sequencer.core.config import ConfigError, signing_secret
from sequencer.core.models import Enrollment
from sequencer.core.yaml_source import SourceError
from sequencer.engine.explain import last_touch_id, touch_lines
from sequencer.engine.tick import act_on_signals, tick
from sequencer.inbound import mailbox_poll
from sequencer.intake import signals
from sequencer.meetings import reminders
from sequencer.sending import mailboxes
from sequencer.sequences.versions import sync

HOUSEKEEPING_EVERY = timedelta(minutes=15)
WAKE_PROBE_SECONDS = 0.05


def _prepare(session, config) -> None:
    now = SystemClock().now()
    try:
        sync(session, now, config.templates_dir, workspace_vocabulary(config, config.templates_dir, session))
        mailboxes.sync_from_settings(session, config, now.date())
    except SourceError as exc:
        for error in exc.errors:
            console.print(f"[red]{error}[/red]", highlight=False, soft_wrap=True)
        fail("refusing to run with a broken sequence")
    except mailboxes.MailboxError as exc:
        fail(str(exc))


def _sleep_until_work(session, seconds: float, known: int) -> str:
    """Wait up to ``seconds``; "signals" as soon as a stored signal waits to be acted on,
    "enrolled" when an enrollment newer than id ``known`` appeared, "" when the time is up.

    Sleeps before each probe, so a signal that stays unprocessed (one that lost every try
    to a concurrent writer) is retried once a probe, never in a busy loop.
    """
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(WAKE_PROBE_SECONDS, left))
        if signals.any_unprocessed(session):
            return "signals"
        if _newest_enrollment(session) > known:
            return "enrolled"
    return ""


def _newest_enrollment(session) -> int:
    """The highest enrollment id (a primary-key lookup); the read is ended, like the signal probe."""
    newest = session.exec(select(func.max(Enrollment.id))).one() or 0
    session.rollback()
    return newest


def _say_touches(session, mark: str, after_id: int, since, clock) -> None:
    """One readable line per touch the pass made (who, what, which mailbox or SDR)."""
    for line in touch_lines(session, after_id, since):
        console.print(f"{mark}{clock.now():%H:%M:%S} {line}", highlight=False, markup=False, soft_wrap=True)


def run_command(
    interval: float = typer.Option(5.0, help="Seconds between ticks."),
    once: bool = typer.Option(False, "--once", help="Run a single tick and exit."),
    templates: Path | None = TEMPLATES_OPTION,
    sandbox: bool = typer.Option(False, "--sandbox", help="Deliver every email into the local Maildir "
                                 "sandbox_outbox (./outbox) instead of sending it; everything else runs as for real."),
) -> None:
    """The embedded scheduler: tick forever (Ctrl-C stops it between ticks). Needs a secret_key."""
    config = settings(templates)
    config.sandbox = config.sandbox or sandbox
    say_templates(config)
    mark = "(sandbox) " if config.sandbox else ""  # every line of a trial run says so
    if config.sandbox:
        console.print(f"{mark}every email goes to the Maildir {Path(config.sandbox_outbox).resolve()}; "
                      "sending-domain checks are skipped", highlight=False, soft_wrap=True)
    try:
        signing_secret(config)  # every email carries a signed unsubscribe link
    except ConfigError as exc:
        fail(f"refusing to run: {exc}")
    engine_runtime = runtime.build(config)
    clock = SystemClock()
    with open_session(config) as session:
        _prepare(session, config)
        chores_due = poll_due = clock.now()
        try:
            while True:
                next_tick = time.monotonic() + interval
                if config.imap_poll_seconds and clock.now() >= poll_due:  # replies and bounces, not only by cron
                    for line in mailbox_poll.poll_all(session, clock.now, config):
                        console.print(f"{mark}{clock.now():%H:%M:%S} {line}", highlight=False, markup=False)
                    poll_due = clock.now() + timedelta(seconds=config.imap_poll_seconds)
                if clock.now() >= chores_due:
                    for line in housekeeping.run(session, clock.now(), config):
                        console.print(f"{mark}{clock.now():%H:%M:%S} {line}", highlight=False)
                    chores_due = clock.now() + HOUSEKEEPING_EVERY
                after, since = last_touch_id(session), clock.now()
                report = tick(session, clock, engine_runtime)
                if report.advanced or report.signals:
                    _say_touches(session, mark, after, since, clock)
                # Meetings: reminders to prospects and overdue acceptances, each sent once.
                for line in reminders.run_due(session, clock.now(), config, engine_runtime.sender,
                                              engine_runtime.domain_problem):
                    console.print(f"{mark}{clock.now():%H:%M:%S} {line}", highlight=False)
                if once:
                    break
                known = _newest_enrollment(session)
                while why := _sleep_until_work(session, next_tick - time.monotonic(), known):
                    after, since = last_touch_id(session), clock.now()
                    if why == "signals":  # ``known`` stays: a process that took a signal first (and
                        woken = act_on_signals(session, clock, engine_runtime,  # enrolled) is seen next probe
                                               [signal.id for signal in signals.unprocessed(session)])
                    else:
                        known = _newest_enrollment(session)
                        woken = tick(session, clock, engine_runtime)
                    if woken.advanced or woken.signals:
                        _say_touches(session, mark, after, since, clock)
        except KeyboardInterrupt:
            console.print("stopped")
        finally:
            engine_runtime.sender.close()
