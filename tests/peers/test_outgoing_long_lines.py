"""No line on the wire is longer than RFC 5322 allows (998 characters), whatever the prospect data.

A long word in a subject, a long line in a body, a long subject in UTF-8: each goes out
encoded and folded, through the engine to a real SMTP server (aiosmtpd refuses a line over
its limit with "500 Line too long", as real servers do), and reads back as it was written.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from unittest import mock

import pytest
from engine_support import add_prospect, enrollment_of, fire, prepare, write_templates
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from channels.email import SmtpSender, UnsendableMessage
from channels.message import OutgoingEmail, build, wire
from sequencer.app.wiring import build as build_runtime
from sequencer.core.models import Mailbox, Touch
from sequencer.engine.tick import tick

MAX_LINE = 998  # RFC 5322 2.1.1, CRLF excluded
LONG_WORD = "x" * 1200
NAMES = {
    "a long ASCII word": LONG_WORD,
    "a long non-ASCII word": "Zoë" * 400,
    "a long non-ASCII name with spaces": "Jürgen Müller " * 80,
}


def lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n")


def read_back(raw: bytes) -> tuple[str, str, str]:
    """(subject, plain text, html) as a mail client shows them."""
    message = message_from_bytes(raw, policy=policy.default)
    plain = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = message.get_body(("html",)).get_content().replace("\r\n", "\n")
    return str(message["Subject"]), plain, html


@pytest.fixture
def runtime(tmp_path, session, clock, settings):
    prepare(session, clock.now(), settings, write_templates(tmp_path / "templates"))
    sender = SmtpSender(timeout=5)
    yield build_runtime(settings, sender, check_domains=False)
    sender.close()


@pytest.mark.parametrize("case", list(NAMES))
def test_prospect_data_too_long_for_a_line_is_sent_folded_and_reads_back_the_same(
        session, clock, smtp, runtime, case):
    name = NAMES[case].strip()
    add_prospect(session, clock.now(), "dana@northwind.example", first_name=name)
    fire(session, clock.now(), "intent_surge", email="dana@northwind.example", score=80)

    assert tick(session, clock, runtime).outcomes == {"sent": 1}

    raw = smtp.messages[0].content
    assert max(len(line) for line in lines(raw)) <= MAX_LINE
    subject, plain, html = read_back(raw)
    assert subject == f"Hello {name}"
    assert plain.startswith(f"Hi {name},\n\n")
    assert name.replace(" ", "") in html.replace(" ", "").replace("\n", "")
    assert session.exec(select(Touch)).one().state == "sent"
    assert enrollment_of(session, "dana@northwind.example").state == "active"


MAILBOX = Mailbox(id=1, address="alex@mail.example", display_name="Alex", sending_domain="mail.example")
LETTERS = st.characters(min_codepoint=33, max_codepoint=126) | st.sampled_from("éß€日")
WORDS = st.text(LETTERS, min_size=1, max_size=40) | st.builds(lambda c, n: c * n, LETTERS, st.integers(900, 1500))

def texts(separators: list[str]) -> st.SearchStrategy[str]:
    return st.lists(st.tuples(WORDS, st.sampled_from(separators)), max_size=4).map(
        lambda parts: "".join(word + sep for word, sep in parts))


COMPAT32_WIRE = policy.compat32.clone(linesep="\r\n", max_line_length=998)


@settings(max_examples=150, deadline=None)
@example(subject=LONG_WORD, text="y" * 1500, html="")
@example(subject="Grüße aus Köln " * 100, text="é" * 1200, html="<p>" + "z" * 2000 + "</p>")
@given(subject=texts([" "]), text=texts([" ", "\n", "\r\n", "\n\n"]), html=texts([" ", "\n"]) | st.just(""))
def test_no_line_of_any_message_is_longer_than_998_and_both_writers_agree(subject, text, html):
    """Subjects are one line: the renderer has made them so before they get here."""
    email = OutgoingEmail(mailbox=MAILBOX, to="dana@prospect.example", subject=subject, text=text, html=html,
                          message_id="m1@mail.example", date=datetime(2026, 11, 30, tzinfo=UTC))

    with mock.patch("channels.message._boundary", lambda *_texts: "=_fixed"):
        raw = wire(email)
        assert raw == build(email).as_bytes(policy=COMPAT32_WIRE)

    assert max(len(line) for line in lines(raw)) <= MAX_LINE
    read_subject, plain, _ = read_back(raw)
    assert " ".join(read_subject.split()) == " ".join(subject.split())
    assert plain == text.replace("\r\n", "\n")


def test_a_header_that_cannot_be_folded_is_refused_before_sending(smtp):
    box = Mailbox(id=1, address="sdr@mail.example", sending_domain="mail.example", smtp_host=smtp.host,
                  smtp_port=smtp.port)
    email = OutgoingEmail(mailbox=box, to="dana@prospect.example", subject="hi", text="hi",
                          headers={"List-Unsubscribe": f"<https://example.test/u/{LONG_WORD}>"})
    sender = SmtpSender(timeout=5)
    try:
        with pytest.raises(UnsendableMessage, match="List-Unsubscribe header cannot be folded"):
            sender.send(email)
    finally:
        sender.close()
    assert smtp.messages == []
