"""A follow-up never threads on an email that may never have arrived.

After the intro is recorded "unknown" (the server's final reply never came), the next email
starts a new thread: the intro's subject without "Re:", no In-Reply-To or References, and
``explain`` says why. ``after_unknown: reply`` in the sequence file keeps the old way.
"""

from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from engine_support import add_prospect, fire, pooled_sequence, prepare, write_templates
from loopback_faults import FaultySmtpServer
from scripted_smtp import scripted
from sqlmodel import select

from channels.email import SmtpSender
from sequencer.app.wiring import build as build_runtime
from sequencer.core.models import Decision, Mailbox, Touch
from sequencer.core.yaml_source import SourceError
from sequencer.engine.explain import explain
from sequencer.engine.tick import tick
from sequencer.sequences.files import load_sequence

POOL = ["sam@outreach-acme.example"]


def _point_mailboxes(session, port: int) -> None:
    for mailbox in session.exec(select(Mailbox)):
        mailbox.smtp_port = port
        session.add(mailbox)
    session.commit()


def _intro_unknown_then_follow_up(tmp_path, session, clock, settings, smtp, sequence: str):
    prepare(session, clock.now(), settings, write_templates(tmp_path / "templates", sequence))
    add_prospect(session, clock.now(), "dana@northwind.example")
    fire(session, clock.now(), "intent_surge", email="dana@northwind.example", score=80)
    sender = SmtpSender(timeout=0.5)
    runtime = build_runtime(settings, sender, check_domains=False)
    try:
        with scripted(["PIPELINING"], final_delay=1.5) as script:  # the final reply comes too late
            _point_mailboxes(session, script["port"])
            assert tick(session, clock, runtime).outcomes == {"unknown": 1}
        _point_mailboxes(session, smtp.port)
        clock.advance(timedelta(days=2))
        tick(session, clock, runtime)
        tick(session, clock, runtime)
    finally:
        sender.close()
    assert len(smtp.messages) == 1
    return message_from_bytes(smtp.messages[0].content, policy=policy.default)


def test_after_an_unknown_intro_the_follow_up_starts_a_new_thread_and_explain_says_why(
        tmp_path, session, clock, settings, smtp: FaultySmtpServer):
    follow_up = _intro_unknown_then_follow_up(tmp_path, session, clock, settings, smtp,
                                              pooled_sequence(POOL, follow_up=True))

    assert follow_up["Subject"] == "Hello Dana"  # the intro's subject, not "Re: Hello Dana"
    assert follow_up["In-Reply-To"] is None and follow_up["References"] is None
    intro, second = sorted(session.exec(select(Touch)).all(), key=lambda t: t.step_index)
    assert intro.state == "unknown" and second.state == "sent"
    sent = session.exec(select(Decision).where(Decision.kind == "sent")).one()
    assert "a new thread: the email of step 1 is unknown" in sent.reason
    story = explain(session, "dana@northwind.example").stories[0]
    line = next(line for line in story.steps if line.step_id == "second")
    assert "Hello Dana" in line.detail and "may never have arrived" in line.detail


def test_after_unknown_reply_keeps_threading_on_the_unknown_intro(tmp_path, session, clock, settings, smtp):
    sequence = pooled_sequence(POOL, follow_up=True).replace("steps:", "after_unknown: reply\nsteps:")
    follow_up = _intro_unknown_then_follow_up(tmp_path, session, clock, settings, smtp, sequence)

    intro = session.exec(select(Touch).where(Touch.step_index == 0)).one()
    assert follow_up["Subject"] == "Re: Hello Dana"
    assert follow_up["In-Reply-To"] == f"<{intro.message_id}>"


@pytest.mark.parametrize("value", ["sometimes", "[new_thread]"])
def test_a_bad_after_unknown_is_a_file_line_error(tmp_path, value):
    root = write_templates(tmp_path / "templates",
                           pooled_sequence(POOL).replace("steps:", f"after_unknown: {value}\nsteps:"))
    with pytest.raises(SourceError) as caught:
        load_sequence(root / "sequences" / "outbound.yaml")
    assert any("outbound.yaml:7" in error and "after_unknown" in error and "new_thread, reply" in error
               for error in caught.value.errors), caught.value.errors
