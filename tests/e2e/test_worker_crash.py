"""A worker SIGKILLed in the middle of a batch: no prospect mailed twice, none forgotten.

Real Celery worker processes on Redis and PostgreSQL send through a loopback SMTP server
that takes a moment per message, so the kill lands mid-batch. A second worker then takes
over: after the (short, fitted) send lease, the touches marked "sending" (delivered, on the
wire, or marked with them: a mailbox's touches are marked MARK_CHUNK at a time) are
recorded "unknown" and never resent, and every touch of the batch still "outbox" (it never
reached the server) is sent. What the server received is the check.
"""

# ruff: noqa: F811 - the imported fixtures are meant to be shadowed by test arguments

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest_dns import dns_server  # noqa: F401 - the fixture
from sqlmodel import select
from test_celery_worker import (  # noqa: F401 - fixtures
    READY_SECONDS,
    TICK_TASK,
    Workspace,
    _stop,
    add_prospects,
    database,
    redis_url,
    touches,
    wait_until,
    workspace,
)

from sequencer.core.config import load_settings
from sequencer.core.db import session as new_session
from sequencer.core.models import Enrollment
from sequencer.engine.send_batch import MARK_CHUNK
from sequencer.intake import enrolling, signals
from sequencer.loopback.smtp_server import Handler, LocalSmtpServer
from sequencer.sending import mailboxes
from sequencer.sequences import versions

PROSPECTS = [f"buyer{i}@company{i}.example" for i in range(10)]
DATA_SECONDS = 0.4  # what the server takes per message: ten of them outlast the kill


class SlowHandler(Handler):
    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(DATA_SECONDS)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def smtp() -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer(handler=SlowHandler()) as server:
        yield server


def _worker(workspace: Workspace, name: str) -> subprocess.Popen[bytes]:
    log_path = workspace.root / f"{name}.log"
    argv = [sys.executable, "-m", "celery", "-A", "sequencer.app.celery_app", "worker", "--concurrency=1",
            "--loglevel=info", "--without-mingle", "--without-gossip", "-n", f"{name}@%h"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, env=workspace.env, cwd=workspace.root, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + READY_SECONDS
    while " ready." not in log_path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"worker {name} did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
    return process


def _states(workspace: Workspace) -> Counter:
    return Counter(touch.state for touch in touches(workspace))


def test_a_worker_killed_mid_batch_leaves_no_duplicate_and_no_gap(workspace: Workspace, smtp: LocalSmtpServer,
                                                                 pg_database: str) -> None:
    workspace.env["SEQUENCER_SMTP_TIMEOUT"] = "1"  # the lease is fitted to it: 13 waits of 1 s, and the batch
    add_prospects(workspace, *PROSPECTS)
    now = datetime.now(UTC)
    with new_session(workspace.engine) as session:
        versions.sync(session, now, Path(workspace.env["SEQUENCER_TEMPLATES"]))
        mailboxes.sync_from_settings(session, load_settings(workspace.config, env={}), now.date())
        for email in PROSPECTS:
            enrolling.process(session, now, signals.store(session, now, signals.SignalIn("intent_surge", email)).signal)
    processes = [_worker(workspace, "victim")]
    try:
        workspace.client.send_task(TICK_TASK)
        wait_until(lambda: len(smtp.messages) >= 3, "the batch to be under way")
        os.killpg(processes[0].pid, signal.SIGKILL)  # the worker and its pool child, mid-batch
        processes[0].wait(timeout=10)
        received_before = len(smtp.messages)
        left = _states(workspace)
        assert 0 < received_before < len(PROSPECTS)
        # Nothing was recorded; every started message is marked, and some of the batch never started.
        assert left["sent"] == 0 and received_before <= left["sending"] <= received_before + MARK_CHUNK, left
        assert left["outbox"] == len(PROSPECTS) - left["sending"] > 0, left
        started = {touch.recipient for touch in touches(workspace) if touch.state == "sending"}

        processes.append(_worker(workspace, "successor"))
        # The successor ticks until the lease is over and the batch is settled.
        wait_until(lambda: workspace.client.send_task(TICK_TASK).get(timeout=30) is not None
                   and not {"outbox", "sending"} & set(_states(workspace)), "the batch to be settled", timeout=90)
    finally:
        _stop(processes)

    received = Counter(recipient for message in smtp.messages for recipient in message.rcpt_tos)
    states = {touch.recipient: touch.state for touch in touches(workspace)}
    assert max(received.values()) == 1, received  # no duplicate
    assert {email for email in PROSPECTS if states[email] == "unknown"} == started, states  # never resent
    # Every message still in the outbox went after the crash, and is recorded sent; the only prospects
    # who may have received nothing are those marked with the one on the wire at the kill.
    assert all(received[email] == 1 and states[email] == "sent" for email in PROSPECTS if email not in started)
    assert len([email for email in PROSPECTS if not received[email]]) < MARK_CHUNK, received
    with new_session(workspace.engine) as session:
        assert {e.current_step for e in session.exec(select(Enrollment))} == {1}  # every one moved on
