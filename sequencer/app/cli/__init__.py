"""The ``sequencer`` command line: a thin shell over the engine modules."""

from __future__ import annotations

import typer

from sequencer.app.cli import (
    api_keys,
    domains,
    enrollments,
    explain,
    inbound,
    init,
    intake,
    mailboxes,
    meetings,
    prospects,
    report,
    rules,
    run,
    sequences,
    serve,
    suppress,
    tasks,
    webhooks,
    worker,
)

app = typer.Typer(no_args_is_help=True, help="Signal-triggered outbound sequencing engine.")
app.add_typer(sequences.app, name="sequences")
app.add_typer(prospects.app, name="prospects")
app.add_typer(intake.signals_app, name="signals")
app.add_typer(tasks.app, name="tasks")
app.add_typer(enrollments.app, name="enrollments")
app.add_typer(inbound.app, name="inbound")
app.add_typer(mailboxes.app, name="mailboxes")
app.add_typer(domains.app, name="domains")
app.add_typer(suppress.app, name="suppress")
app.add_typer(rules.app, name="rules")
app.add_typer(api_keys.app, name="api-keys")
app.add_typer(meetings.app, name="meetings")
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(report.app, name="report")
app.command("init")(init.init_command)
app.command("signal")(intake.signal_command)
app.command("enroll")(enrollments.enroll_command)
app.command("run")(run.run_command)
app.command("explain")(explain.explain_command)
app.command("serve")(serve.serve_command)
app.command("worker")(worker.worker_command)


@app.command()
def demo(keep: bool = typer.Option(False, help="Keep the throw-away workspace and print its path.")) -> None:
    """Run the whole engine in simulated time on a throw-away SQLite workspace."""
    from sequencer.app.demo import run_demo

    run_demo(keep=keep)
