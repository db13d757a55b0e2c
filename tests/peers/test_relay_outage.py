"""A relay outage is the mailbox's failure, not each message's: the batch goes again within
seconds (2, 4, 8 ... capped), once counted against the mailbox, nothing counted against the
messages, and nothing sent twice when the relay comes back. Real faults on loopback: a
port nobody listens on, then a server started on it; a server that hangs up at once."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from engine_support import add_prospect, fire, prepare, write_templates
from loopback_faults import FaultySmtpServer
from sqlmodel import select

from channels.email import SmtpSender
from sequencer.app.wiring import build as build_runtime
from sequencer.core.models import CapCounter, Decision, Enrollment, Mailbox, Touch
from sequencer.engine.tick import tick
from sequencer.loopback.smtp_server import free_port

PROSPECTS = [f"p{n}@northwind{n}.example" for n in range(3)]


@pytest.fixture
def relay_port():
    return free_port()


@pytest.fixture
def runtime(settings, relay_port):
    settings.relay_retry_max_seconds = 5.0
    sender = SmtpSender(timeout=5)
    yield build_runtime(settings, sender, check_domains=False)
    sender.close()


@pytest.fixture
def enrolled(tmp_path, session, clock, settings, relay_port):
    prepare(session, clock.now(), settings, write_templates(tmp_path / "templates"))
    for mailbox in session.exec(select(Mailbox)):
        mailbox.smtp_port = relay_port  # nothing listens there yet
        session.add(mailbox)
    session.commit()
    for email in PROSPECTS:
        add_prospect(session, clock.now(), email)
        fire(session, clock.now(), "intent_surge", email=email, score=80)


def _sam(session) -> Mailbox:
    session.expire_all()
    return session.exec(select(Mailbox).where(Mailbox.address == "sam@outreach-acme.example")).one()


def _due(session) -> set:
    session.expire_all()
    return {e.next_due_at for e in session.exec(select(Enrollment))}


def test_a_refused_connection_retries_the_batch_in_seconds_then_it_goes_once(enrolled, session, clock, runtime,
                                                                            relay_port):
    assert tick(session, clock, runtime).outcomes == {"relay_retry": 3}
    assert _due(session) == {clock.now() + timedelta(seconds=2)}
    assert (_sam(session).relay_failures, "cannot connect" in _sam(session).relay_error) == (1, True)
    # Nothing is held against the messages: no failed attempt, no bounce, every cap place back.
    assert session.exec(select(Decision).where(Decision.kind.in_(["send_failed", "bounce", "retry"]))).all() == []
    assert {row.used for row in session.exec(select(CapCounter))} == {0}
    deferred = session.exec(select(Decision).where(Decision.kind == "deferred")).all()
    assert len(deferred) == 3 and all(d.detail["guard"] == "relay" for d in deferred)
    assert "relay of sam@outreach-acme.example unreachable (1 in a row)" in deferred[0].reason

    clock.advance(timedelta(seconds=2))
    assert tick(session, clock, runtime).outcomes == {"relay_retry": 3}
    assert _due(session) == {clock.now() + timedelta(seconds=4)}
    clock.advance(timedelta(seconds=4))
    tick(session, clock, runtime)
    assert _due(session) == {clock.now() + timedelta(seconds=5)}  # 8 s, capped at relay_retry_max_seconds
    assert _sam(session).relay_failures == 3

    with FaultySmtpServer(port=relay_port) as smtp:  # the relay is back
        clock.advance(timedelta(seconds=5))
        assert tick(session, clock, runtime).outcomes == {"sent": 3}
        clock.advance(timedelta(minutes=30))
        tick(session, clock, runtime)
    assert sorted(m.rcpt_tos[0] for m in smtp.messages) == sorted(PROSPECTS)
    assert {t.state for t in session.exec(select(Touch))} == {"sent"}
    assert (_sam(session).relay_failures, _sam(session).relay_error) == (0, "")
    assert {(row.key.split(":")[0], row.used) for row in session.exec(select(CapCounter))
            if row.key.startswith("mailbox")} == {("mailbox", 3)}


@contextmanager
def _hangs_up_at_once(port: int) -> Iterator[list[int]]:
    """A relay that accepts the connection and closes it before any greeting; counts connections."""
    connections: list[int] = []

    class HangUp(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            connections.append(1)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", port), HangUp)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield connections
    finally:
        server.shutdown()
        server.server_close()


def test_a_relay_that_hangs_up_before_any_recipient_costs_one_connection_for_the_whole_batch(
        enrolled, session, clock, runtime, relay_port):
    with _hangs_up_at_once(relay_port) as connections:
        assert tick(session, clock, runtime).outcomes == {"relay_retry": 3}
    assert len(connections) == 1  # the mailbox's other emails were not tried against a relay known down
    assert {t.state for t in session.exec(select(Touch))} == {"retry"}
    assert _sam(session).relay_failures == 1
    assert session.exec(select(Decision).where(Decision.kind == "send_failed")).all() == []
