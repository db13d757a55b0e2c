"""The distributed deployment end to end: real Celery workers on real Redis and PostgreSQL.

Each worker is a subprocess (``celery -A sequencer.app.celery_app worker`` or ``sequencer
worker``'s function) that sends through the loopback SMTP server and checks its sending
domain against the loopback DNS server, as a production host would. Redis is required
under CI (CI=true) and skipped with a reason elsewhere, like PostgreSQL in conftest.
"""

# ruff: noqa: F811 - the imported dns_server fixture is meant to be shadowed by test arguments

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from celery import Celery
from conftest_dns import DOMAIN, dns_server, serve_healthy, settings_for  # noqa: F401 - the fixture
from engine_support import write_templates
from peers import missing_peer
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, select

from sequencer.app.celery_app import INGEST_TASK, REFRESH_DOMAINS_TASK, TICK_TASK
from sequencer.core.config import load_settings
from sequencer.core.db import make_engine
from sequencer.core.db import session as new_session
from sequencer.core.models import Enrollment, Signal, Touch
from sequencer.core.yaml_source import SourceError
from sequencer.intake import enrolling, prospects, signals
from sequencer.loopback.dns_server import DNSServer
from sequencer.loopback.smtp_server import LocalSmtpServer
from sequencer.sending import mailboxes
from sequencer.sequences import versions

READY_SECONDS = 30
DELIVERY_SECONDS = 60
MAILBOX = f"sam@{DOMAIN}"

SEQUENCE = f"""\
name: celery-outbound
owner: sam.sdr@acme.com
trigger:
  signals: [intent_surge]
window: {{days: mon-sun, start: "06:00", end: "20:00"}}
mailboxes: [{MAILBOX}]
steps:
  - id: first
    kind: email
    subject: "Hello {{{{ prospect.first_name }}}}"
    template: first.j2
  - kind: wait
    business_days: 2
  - id: second
    kind: email
    template: second.j2
"""
TEMPLATES = {
    "first.j2": "Hi {{ prospect.first_name }},\n\nSaw the surge.\n\n{{ sender.name }}",
    "second.j2": "Following up, {{ prospect.first_name }}.",
}


def noon_zone() -> str:
    """A fixed-offset zone where it is about noon now, so the window is open whenever tests run."""
    offset = 12 - datetime.now(UTC).hour  # local hour = UTC hour + offset, in -11..12
    return f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT"


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return json.dumps(str(value))


@pytest.fixture
def redis_url(redis_database: str) -> str:
    """This run's Redis database, emptied; fails under CI and skips elsewhere when it is down."""
    try:
        redis.Redis.from_url(redis_database, socket_connect_timeout=2).flushdb()
    except redis.RedisError as exc:
        missing_peer(f"Redis not reachable at {redis_database}: {exc}")
    return redis_database


@pytest.fixture
def database(pg_database: str) -> Iterator[Engine]:
    """The shared PostgreSQL test database, emptied for this test."""
    engine = make_engine(pg_database)
    tables = ", ".join(f'"{table.name}"' for table in SQLModel.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield engine
    engine.dispose()


@dataclass
class Workspace:
    root: Path
    env: dict[str, str]
    config: Path
    engine: Engine
    client: Celery  # publishes to the workers' broker and reads their results


@pytest.fixture
def workspace(
    redis_url: str,
    tmp_path: Path,
    smtp: LocalSmtpServer,
    dns_server: DNSServer,
    database: Engine,
    pg_database: str,
) -> Iterator[Workspace]:
    """Templates, a config file and the environment a worker host would have."""
    serve_healthy(dns_server)
    dns = settings_for(dns_server)
    values = {
        name: getattr(dns, name)
        for name in (
            "primary_domain",
            "dns_nameservers",
            "dns_timeout",
            "dkim_selector",
            "domain_blocklists",
            "ip_blocklists",
            "sending_ips",
        )
    }
    values["secret_key"] = "test-secret-0123456789abcdefghij"  # a worker refuses one under 16 characters
    mailbox = {
        "address": MAILBOX,
        "display_name": "Sam Rivera",
        "owner": "sam.sdr@acme.com",
        "smtp_host": smtp.host,
        "smtp_port": smtp.port,
        "daily_cap": 100,
    }
    lines = [f"{key} = {toml_value(value)}" for key, value in values.items()]
    lines += [
        "",
        "[[mailboxes]]",
        *(f"{key} = {toml_value(value)}" for key, value in mailbox.items()),
    ]
    config = tmp_path / "sequencer.toml"
    config.write_text("\n".join(lines) + "\n")
    templates = write_templates(tmp_path / "templates", SEQUENCE, TEMPLATES)
    env = {
        **os.environ,
        "SEQUENCER_CONFIG": str(config),
        "SEQUENCER_DATABASE_URL": pg_database,
        "SEQUENCER_BROKER_URL": redis_url,
        "SEQUENCER_TEMPLATES": str(templates),
        "SEQUENCER_TICK_SECONDS": "1",
    }
    client = Celery("sequencer-test-client", broker=redis_url, backend=redis_url)
    yield Workspace(tmp_path, env, config, database, client)
    client.close()


WORKER_MAIN = (
    "import typer; from sequencer.app.cli.worker import worker_command; typer.run(worker_command)"
)


@pytest.fixture
def start_worker(workspace: Workspace) -> Iterator[Callable[..., Path]]:
    """Start worker subprocesses; every one is stopped when the test ends, pass or fail.

    ``start(name)`` runs ``celery -A sequencer.app.celery_app worker`` without beat;
    ``start(name, beat=True)`` runs ``sequencer worker``'s function, beat included.
    Returns the worker's log file once the worker says it is ready.
    """
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, *, beat: bool = False, concurrency: int = 2) -> Path:
        log_path = workspace.root / f"{name}.log"
        if beat:
            argv = [sys.executable, "-c", WORKER_MAIN, f"--concurrency={concurrency}", "--beat"]
        else:
            argv = [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "sequencer.app.celery_app",
                "worker",
                f"--concurrency={concurrency}",
                "--loglevel=info",
                "--without-mingle",
                "--without-gossip",
                "-n",
                f"{name}@%h",
            ]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                argv,
                env=workspace.env,
                cwd=workspace.root,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started.append(process)
        deadline = time.monotonic() + READY_SECONDS
        while " ready." not in log_path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"worker {name} did not start:\n{log_path.read_text(errors='replace')[-3000:]}"
                )
            time.sleep(0.1)
        return log_path

    yield start
    _stop(started)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """Warm shutdown for all at once; then kill whatever is left of each process group."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # pool children or beat left behind
        process.wait(timeout=10)


def wait_until(
    condition: Callable[[], object], what: str, timeout: float = DELIVERY_SECONDS
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def add_prospects(workspace: Workspace, *emails: str) -> None:
    now = datetime.now(UTC)
    with new_session(workspace.engine) as session:
        for email in emails:
            prospects.upsert_prospect(
                session, now, email, {"first_name": "Dana", "timezone": noon_zone()}
            )
        session.commit()


def touches(workspace: Workspace) -> list[Touch]:
    with new_session(workspace.engine) as session:
        return list(session.exec(select(Touch).order_by(Touch.id)))


def signal_row(workspace: Workspace, signal_id: int) -> Signal:
    with new_session(workspace.engine) as session:
        return session.get(Signal, signal_id)


def run_tick(workspace: Workspace) -> dict:
    """One tick task through Redis, waited for; a sync point between test and worker."""
    return workspace.client.send_task(TICK_TASK).get(timeout=DELIVERY_SECONDS)


def test_a_stored_signal_is_ingested_by_a_worker_and_its_first_email_goes_out_in_the_same_pass(
    workspace: Workspace, start_worker: Callable[..., Path], smtp: LocalSmtpServer
) -> None:
    start_worker("solo")  # no beat: only the ingest task can act on the signal
    add_prospects(workspace, "dana@northwind.example")

    with new_session(workspace.engine) as session:
        incoming = signals.SignalIn("intent_surge", "dana@northwind.example")
        stored = signals.store(session, datetime.now(UTC), incoming).signal
    ingested = workspace.client.send_task(INGEST_TASK, args=[[stored.id]])

    assert ingested.get(timeout=DELIVERY_SECONDS) == "processed"
    with new_session(workspace.engine) as session:
        enrollment = session.exec(select(Enrollment)).one()
    assert (enrollment.sequence_name, enrollment.state, enrollment.signal_id) == (
        "celery-outbound",
        "active",
        stored.id,
    )
    # The first step is an email inside the window: sent by the ingest task, no tick needed.
    assert [message.rcpt_tos for message in smtp.messages] == [["dana@northwind.example"]]
    assert b"Subject: Hello Dana" in smtp.messages[0].content
    redelivered = workspace.client.send_task(INGEST_TASK, args=[stored.id])  # an old message: one id
    assert redelivered.get(timeout=DELIVERY_SECONDS) == "already_processed"
    refreshed = workspace.client.send_task(REFRESH_DOMAINS_TASK).get(timeout=DELIVERY_SECONDS)
    assert refreshed == [f"{DOMAIN}: pass"]  # the beat's domain refresh

    again = run_tick(workspace)

    assert again["outcomes"] == {}
    assert len(smtp.messages) == 1
    assert [(touch.recipient, touch.state) for touch in touches(workspace)] == [
        ("dana@northwind.example", "sent")
    ]


def test_a_stored_signal_that_no_message_announced_is_delivered_by_the_next_tick(
    workspace: Workspace, start_worker: Callable[..., Path], smtp: LocalSmtpServer
) -> None:
    """The database is the truth: a signal stored while no message reached the broker (Redis
    down, or a caller that never enqueues) is found and acted on by a beat tick."""
    add_prospects(workspace, "lee@fabrikam.example")

    with new_session(workspace.engine) as session:
        incoming = signals.SignalIn("intent_surge", "lee@fabrikam.example")
        stored = signals.store(session, datetime.now(UTC), incoming).signal

    assert signal_row(workspace, stored.id).processed_at is None
    assert redis.Redis.from_url(workspace.env["SEQUENCER_BROKER_URL"]).llen("celery") == 0  # nothing reached the broker

    start_worker("with-beat", beat=True, concurrency=1)
    wait_until(lambda: smtp.messages, "a beat tick to deliver the email")
    wait_until(
        lambda: [t.state for t in touches(workspace)] == ["sent"],
        "the touch to be recorded as sent",
    )
    run_tick(workspace)

    assert [message.rcpt_tos for message in smtp.messages] == [["lee@fabrikam.example"]]
    assert signal_row(workspace, stored.id).processed_at is not None


def test_two_workers_ticking_the_same_due_work_send_one_email_per_prospect(
    workspace: Workspace, start_worker: Callable[..., Path], smtp: LocalSmtpServer
) -> None:
    emails = [f"buyer{i}@company{i}.example" for i in range(4)]
    add_prospects(workspace, *emails)
    now = datetime.now(UTC)
    settings = load_settings(workspace.config, env={})
    with new_session(workspace.engine) as session:
        versions.sync(session, now, Path(workspace.env["SEQUENCER_TEMPLATES"]))
        mailboxes.sync_from_settings(session, settings, now.date())
        for email in emails:
            stored = signals.store(session, now, signals.SignalIn("intent_surge", email)).signal
            enrolling.process(session, now, stored)
    logs = [start_worker("first"), start_worker("second")]

    pending = [workspace.client.send_task(TICK_TASK) for _ in range(8)]
    reports = [result.get(timeout=DELIVERY_SECONDS) for result in pending]

    assert sum(report.get("outcomes", {}).get("sent", 0) for report in reports) == len(emails)
    assert sorted(
        recipient for message in smtp.messages for recipient in message.rcpt_tos
    ) == sorted(emails)
    assert sorted((touch.recipient, touch.state) for touch in touches(workspace)) == [
        (email, "sent") for email in sorted(emails)
    ]
    for log in logs:  # the ticks really were shared out between the two workers
        assert f"Task {TICK_TASK}[" in log.read_text(errors="replace")


def test_a_worker_refuses_to_act_while_a_sequence_file_is_broken(
    workspace: Workspace, start_worker: Callable[..., Path], smtp: LocalSmtpServer
) -> None:
    sequence_file = Path(workspace.env["SEQUENCER_TEMPLATES"]) / "sequences" / "outbound.yaml"
    sequence_file.write_text(SEQUENCE.replace("kind: email", "kind: carrier_pigeon", 1))
    add_prospects(workspace, "kim@contoso.example")
    with new_session(workspace.engine) as session:
        incoming = signals.SignalIn("intent_surge", "kim@contoso.example")
        stored = signals.store(session, datetime.now(UTC), incoming).signal
    log = start_worker("broken")

    with pytest.raises(SourceError):
        run_tick(workspace)

    output = log.read_text(errors="replace")
    assert f"{sequence_file}:9: unknown step kind 'carrier_pigeon'" in output
    assert "refusing to run with a broken sequence" in output
    assert signal_row(workspace, stored.id).processed_at is None
    assert smtp.messages == []
