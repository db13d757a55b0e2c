"""``sequencer signal`` and ``signals import`` (``prospects`` commands are in prospects.py)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import Progress

from sequencer.app.cli.common import console, fail, open_session, settings, signal_types
from sequencer.core.clock import SystemClock
from sequencer.intake import enrolling, signals
from sequencer.intake import prospects as prospect_store
from sequencer.rules.actions import rulebook
from sequencer.rules.reactions import signal_reaction

signals_app = typer.Typer(help="Bulk signal intake.", no_args_is_help=True)


def parse_data(items: list[str]) -> dict[str, str]:
    data = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"--data {item!r}: expected KEY=VALUE")
        data[key.strip()] = value
    return data


def signal_command(
    type_: str = typer.Argument(..., metavar="TYPE", help="intent_surge, funding_round, job_change, form_fill, ..."),
    email: str = typer.Option("", help="The prospect the signal is about."),
    domain: str = typer.Option("", help="The account (company domain) the signal is about."),
    data: list[str] = typer.Option([], "--data", "-d", help="Payload field KEY=VALUE (repeatable)."),
    dedupe_key: str = typer.Option("", help="Signals with the same key are one signal."),
    occurred_at: str = typer.Option("", help="ISO 8601 time the event happened (default: now)."),
    source: str = typer.Option("cli", help="Where the signal came from."),
) -> None:
    """Record one signal; it is stored first, then enrolls and wakes prospects."""
    now = SystemClock().now()
    config = settings()
    types = signal_types(config)
    with open_session(config) as session:
        try:
            incoming = signals.SignalIn(
                type=type_, email=email, domain=domain, payload=parse_data(data), source=source,
                occurred_at=signals.parse_time(occurred_at) if occurred_at else None, dedupe_key=dedupe_key,
            )
            stored = signals.store(session, now, incoming, types=types)
        except ValueError as exc:
            fail(str(exc))
        if stored.duplicate:
            console.print(f"duplicate of signal #{stored.signal.id} (dedupe key {stored.signal.dedupe_key}); ignored")
            return
        outcome = enrolling.process(session, now, stored.signal, react=signal_reaction(rulebook(config)))
    console.print(f"signal #{outcome.signal_id} stored: {len(outcome.enrolled)} enrolled, "
                  f"{len(outcome.woken)} woken, {len(outcome.skipped)} not enrolled")
    for reason in outcome.skipped:
        console.print(f"  not enrolled: {reason}", highlight=False)


@signals_app.command("import")
def import_signals(path: Path = typer.Argument(..., exists=True, dir_okay=False, help=".jsonl or .csv")) -> None:
    """Store every good signal of a file (bad lines are reported), then act on them."""
    now = SystemClock().now()
    config = settings()
    types = signal_types(config)
    enrolled = 0

    with open_session(config) as session, Progress(console=console, transient=True) as progress:
        bar = progress.add_task("signals", total=prospect_store.count_rows(path) + 1)

        react = signal_reaction(rulebook(config))

        def act_on(ids: list[int]) -> None:  # each stored batch is processed before the next is read
            nonlocal enrolled
            enrolled += sum(len(outcome.enrolled) for outcome in enrolling.process_stored(session, now, ids,
                                                                                         react=react))

        try:
            report = signals.import_file(session, now, path, lambda n: progress.advance(bar, n), types=types,
                                         on_stored=act_on)
        except ValueError as exc:
            fail(str(exc))
    for error in report.errors:
        console.print(error, style="red", highlight=False, markup=False, soft_wrap=True)
    if report.refused > len(report.errors):
        console.print(f"... and {report.refused - len(report.errors)} more refused line(s)", style="red")
    console.print(f"{report.stored} signal(s) stored, {report.duplicates} duplicate(s), {report.refused} refused; "
                  f"{enrolled} enrollment(s) started")
    if report.refused:
        raise typer.Exit(1)
