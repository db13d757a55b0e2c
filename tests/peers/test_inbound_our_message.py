"""A bounce message about our message itself (too big, bad syntax, its content) is our fault.

At send time such a refusal already blocks the touch for a person
(tests/peers/test_refusals_of_our_message.py); the same must hold when it arrives later as
a DSN: the touch is blocked, its enrollment paused "needs attention", and the recipient is
neither suppressed nor bounced, and no stop rule runs. Through the ingest function, on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest
from engine_support import enrollment_of, prepare, write_templates
from inbound_support import dsn, send_first_email
from sqlmodel import select

from channels.email import SmtpSender
from sequencer.app.wiring import build as build_runtime
from sequencer.core.models import Decision, Touch
from sequencer.inbound.ingest import ingest_raw
from suppression.models import SuppressionEntry

DANA = "dana@northwind.example"


@pytest.fixture
def runtime(tmp_path, session, clock, settings):
    prepare(session, clock.now(), settings, write_templates(tmp_path / "templates"))
    sender = SmtpSender(timeout=5)
    yield build_runtime(settings, sender, check_domains=False)
    sender.close()


@pytest.mark.parametrize(("status", "diagnostic"), [
    ("5.6.0", "550 5.6.0 invalid MIME structure in the message"),
    ("5.3.4", "552 5.3.4 message size exceeds fixed maximum message size"),
    ("5.5.2", "500 5.5.2 line too long"),
])
def test_a_dsn_about_our_message_blocks_the_touch_for_a_person_and_never_touches_the_address(
        session, clock, settings, runtime, smtp, status, diagnostic):
    first, = send_first_email(session, clock, runtime, smtp, DANA)

    result = ingest_raw(session, clock.now(), settings, dsn(first, status, diagnostic))

    assert result.message.touch_id is not None and "our message was refused" in result.action
    session.expire_all()
    assert session.exec(select(SuppressionEntry)).all() == []
    touch = session.get(Touch, result.message.touch_id)
    assert touch.state == "blocked" and status in touch.reason
    enrollment = enrollment_of(session, DANA)
    assert enrollment.state == "paused" and enrollment.reason.startswith("needs attention: our message was refused")
    assert not session.exec(select(Decision).where(Decision.rule.like("builtin.bounce%"))).all()


def test_a_dsn_for_an_unknown_user_still_suppresses(session, clock, settings, runtime, smtp):
    """The recipient's own fault keeps its verdict: 5.1.1 is a hard bounce."""
    first, = send_first_email(session, clock, runtime, smtp, DANA)

    ingest_raw(session, clock.now(), settings, dsn(first, "5.1.1", "550 5.1.1 user unknown"))

    session.expire_all()
    assert [entry.reason for entry in session.exec(select(SuppressionEntry))] == ["hard_bounce"]
    assert enrollment_of(session, DANA).state == "stopped"
