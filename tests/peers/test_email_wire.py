"""The SMTP wire policy writes exactly what compat32 would, only faster."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.errors import HeaderParseError
from email.policy import compat32
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from channels import verp
from channels.email import SmtpSender
from channels.message import _WIRE, OutgoingEmail, _boundary, build, wire
from sequencer.core.models import Mailbox

COMPAT32_WIRE = compat32.clone(linesep="\r\n", max_line_length=998)
ASCII_VALUES = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126) | st.sampled_from("\t "),
                       max_size=1100)


@settings(max_examples=500, deadline=None)
@given(name=st.sampled_from(["Subject", "To", "X-Long-Header-Name", "List-Unsubscribe"]), value=ASCII_VALUES)
def test_an_ascii_header_is_folded_as_compat32_folds_it(name, value):
    assert _WIRE.fold_binary(name, value) == COMPAT32_WIRE.fold_binary(name, value)


@settings(max_examples=100, deadline=None)
@given(name=st.sampled_from(["Subject", "X-Note"]), value=st.text(max_size=200))
def test_any_header_text_is_folded_as_compat32_folds_it(name, value):
    assert _WIRE.fold_binary(name, value) == COMPAT32_WIRE.fold_binary(name, value)


def test_whole_messages_are_byte_for_byte_what_compat32_writes():
    mailbox = Mailbox(id=1, address="alex@mail.example", display_name="Zoë Müller", sending_domain="mail.example")
    cases = [
        ("Quick question", "Hi Dana,\n\nplain ascii text."),
        ("Grüße aus Köln — kurze Frage", "Hallo Jürgen,\n\nein Text mit Umlauten."),
        ("x" * 1200, "long subject, folded"),
        ("tabs\tand  double  spaces ", "body"),
    ]
    for subject, text in cases:
        email = OutgoingEmail(
            mailbox=mailbox, to="dana@prospect.example", subject=subject, text=text, html="",
            message_id="abc@mail.example", in_reply_to="first@mail.example", references=["first@mail.example"],
            headers={"List-Unsubscribe": "<https://example.test/u/" + "t" * 120 + ">",
                     "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
            date=datetime(2026, 11, 30, 15, 0, tzinfo=UTC),
            envelope_from=verp.return_path("alex@mail.example", 1, "wire-test-secret"),
        )
        message = build(email)
        assert message.as_bytes(policy=_WIRE) == message.as_bytes(policy=COMPAT32_WIRE), subject


def test_the_boundary_is_never_in_a_part(monkeypatch):
    tokens = iter(["aa", "bb"])
    monkeypatch.setattr("channels.message.secrets.token_hex", lambda _n: next(tokens))
    assert _boundary("a text that mentions =_aa on purpose", "<p>html</p>") == "=_bb"


def test_a_built_message_parses_back_into_its_two_parts():
    mailbox = Mailbox(id=1, address="alex@mail.example", display_name="Alex", sending_domain="mail.example")
    email = OutgoingEmail(mailbox=mailbox, to="dana@prospect.example", subject="Hi", text="Grüße,\n\nDana",
                          html="", message_id="m1@mail.example", date=datetime(2026, 11, 30, tzinfo=UTC))
    parsed = message_from_bytes(build(email).as_bytes(policy=_WIRE))
    parts = [part for part in parsed.walk() if not part.is_multipart()]
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert parts[0].get_payload(decode=True).decode("utf-8") == "Grüße,\r\n\r\nDana"  # CRLF on the wire
    assert "Dana" in parts[1].get_payload(decode=True).decode("utf-8")


def test_send_many_delivers_per_mailbox_in_order_and_reports_each_refusal(smtp):
    """Several mailboxes at once over a real SMTP server; a refusal is that message's own result."""
    boxes = [Mailbox(id=i, address=f"sdr{i}@mail.example", sending_domain="mail.example", smtp_host=smtp.host,
                     smtp_port=smtp.port) for i in (1, 2, 3)]
    smtp.refuse("nobody@prospect.example", "550 5.1.1 no such user")
    emails = [OutgoingEmail(mailbox=boxes[i % 3], to="nobody@prospect.example" if i == 4 else f"p{i}@prospect.example",
                            subject=f"n{i}", text="hi", message_id=f"m{i}@mail.example") for i in range(9)]
    sender = SmtpSender(timeout=5, threads=3)
    try:
        errors = sender.send_many(emails)
    finally:
        sender.close()

    assert [i for i, error in enumerate(errors) if error is not None] == [4]
    assert errors[4].code == 550 and errors[4].permanent
    received = {(m.mail_from, m.rcpt_tos[0]) for m in smtp.messages}
    assert received == {(e.mailbox.address, e.to) for i, e in enumerate(emails) if i != 4}
    for box in boxes:  # each mailbox's messages arrive in the order they were given
        mine = [m.rcpt_tos[0] for m in smtp.messages if m.mail_from == box.address]
        assert mine == [e.to for i, e in enumerate(emails) if e.mailbox is box and i != 4]


def test_a_message_whose_header_would_embed_another_is_refused_alone_and_the_rest_go(smtp):
    box = Mailbox(id=1, address="sdr@mail.example", sending_domain="mail.example", smtp_host=smtp.host,
                  smtp_port=smtp.port)
    emails = [OutgoingEmail(mailbox=box, to=f"p{i}@prospect.example", text="hi", message_id=f"m{i}@mail.example",
                            subject="hi\r\nBcc: everyone@else.example" if i == 1 else "hi") for i in range(3)]
    sender = SmtpSender(timeout=5)
    try:
        errors = sender.send_many(emails)
    finally:
        sender.close()

    assert errors[0] is None and errors[2] is None
    assert errors[1].permanent and "header is unsafe" in str(errors[1])
    assert sorted(m.rcpt_tos[0] for m in smtp.messages) == ["p0@prospect.example", "p2@prospect.example"]


TEXTS = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126) | st.sampled_from("\r\n\t"), max_size=400)


@settings(max_examples=300, deadline=None)
@given(text=TEXTS | st.text(max_size=100), html=TEXTS | st.just(""), subject=st.text(max_size=120),
       name=st.text(max_size=40), reply=st.booleans())
def test_wire_writes_exactly_what_the_email_package_writes(text, html, subject, name, reply):
    """The direct writer and the MIME classes agree byte for byte, ASCII or not."""
    mailbox = Mailbox(id=1, address="alex@mail.example", display_name=name, sending_domain="mail.example")
    email = OutgoingEmail(
        mailbox=mailbox, to="dana@prospect.example", subject=subject, text=text, html=html,
        message_id="abc@mail.example", in_reply_to="first@mail.example" if reply else "",
        references=["first@mail.example"] if reply else [],
        headers={"List-Unsubscribe": "<https://example.test/u/tok>",
                 "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        date=datetime(2026, 11, 30, 15, 0, tzinfo=UTC),
    )
    with mock.patch("channels.message._boundary", lambda *_texts: "=_fixed"):
        assert _written(lambda: wire(email)) == _written(lambda: build(email).as_bytes(policy=COMPAT32_WIRE))


def _written(write):
    """The bytes, or the refusal of a header that would embed another one (both must refuse alike)."""
    try:
        return write()
    except HeaderParseError as exc:
        return f"refused: {exc}"
