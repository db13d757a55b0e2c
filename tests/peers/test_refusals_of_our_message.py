"""A server refusing our message itself is our fault: the touch waits for a person, the address is fine.

The loopback SMTP server answers the end of DATA (or RCPT TO) with what real servers say
about a message: too big (5.3.4), a line too long, malformed (5.6.x), bad syntax (5.5.x).
The touch is blocked and the enrollment paused "needs attention", as for a message
refused before sending; the prospect is never suppressed, never bounced, never mailed
again until a person resumes. A refusal of the recipient is still a bounce.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from engine_support import add_prospect, enrollment_of, fire, prepare, write_templates
from loopback_faults import FaultySmtpServer, RefusingHandler
from sqlmodel import select

from sequencer.app import wiring as production
from sequencer.core.models import Decision, Touch
from sequencer.engine.tick import tick
from sequencer.loopback.smtp_server import LocalSmtpServer
from suppression.models import SuppressionEntry

DANA = "dana@northwind.example"


@dataclass
class ContentRefusingHandler(RefusingHandler):
    data_reply: str = ""  # the answer to the end of DATA, when set

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply:
            return self.data_reply
        return await super().handle_DATA(server, session, envelope)


class ContentRefusingServer(FaultySmtpServer):
    handler: ContentRefusingHandler

    def __init__(self) -> None:
        LocalSmtpServer.__init__(self, handler=ContentRefusingHandler())


@pytest.fixture
def smtp() -> Iterator[ContentRefusingServer]:  # the settings fixture points the mailboxes here
    with ContentRefusingServer() as server:
        yield server


@pytest.fixture
def runtime(tmp_path, session, clock, settings):
    prepare(session, clock.now(), settings, write_templates(tmp_path / "templates"))
    built = production.build(settings, check_domains=False)
    yield built
    built.sender.close()


def suppressed(session) -> list[str]:
    session.expire_all()
    return session.exec(select(SuppressionEntry.value)).all()


@pytest.mark.parametrize(("stage", "reply"), [
    ("data", "552 5.3.4 Message size exceeds fixed maximum message size"),
    ("data", "500 Line too long (see RFC5321 4.5.3.1.6)"),
    ("data", "554 5.6.0 Mail message is malformed. Not accepted."),
    ("data", "550 5.6.11 SMTPSEND.BareLinefeedsAreIllegal; message contains bare linefeeds"),
    ("rcpt", "555 5.5.2 Syntax error"),
    ("rcpt", "552 Error: message size exceeds fixed maximum message size"),
])
def test_a_refusal_of_our_message_blocks_the_touch_for_a_person_and_never_touches_the_address(
        session, clock, smtp, runtime, stage, reply):
    if stage == "data":
        smtp.handler.data_reply = reply
    else:
        smtp.refuse(DANA, reply)
    add_prospect(session, clock.now(), DANA)
    fire(session, clock.now(), "intent_surge", email=DANA, score=80)

    assert tick(session, clock, runtime).outcomes == {"blocked": 1}

    touch = session.exec(select(Touch)).one()
    assert touch.state == "blocked" and reply in touch.reason and "our message was refused" in touch.reason
    enrollment = enrollment_of(session, DANA)
    assert enrollment.state == "paused" and enrollment.reason.startswith("needs attention: our message was refused")
    assert suppressed(session) == []
    kinds = [d.kind for d in session.exec(select(Decision).where(Decision.touch_id == touch.id))]
    assert "blocked" in kinds and "bounce" not in " ".join(kinds)
    smtp.handler.data_reply, smtp.handler.refuse = "", {}
    clock.advance(timedelta(days=3))
    tick(session, clock, runtime)
    assert smtp.messages == [] and enrollment_of(session, DANA).state == "paused"  # nothing more until a person


def test_a_refusal_of_the_recipient_at_the_end_of_data_is_still_a_hard_bounce(session, clock, smtp, runtime):
    smtp.handler.data_reply = "550 5.1.1 <dana@northwind.example>: Recipient address rejected: User unknown"
    add_prospect(session, clock.now(), DANA)
    fire(session, clock.now(), "intent_surge", email=DANA, score=80)

    tick(session, clock, runtime)

    assert session.exec(select(Touch)).one().state == "failed"
    assert enrollment_of(session, DANA).state == "stopped"
    assert suppressed(session) == [DANA]
