"""One message over SMTP, pipelined (RFC 2920) when the server offers it, classic otherwise.

Every case runs against a real server on loopback, once offering PIPELINING and once not,
and must come out the same: what arrives, and how each refusal is reported.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from email import message_from_bytes, policy

import pytest
from loopback_faults import FaultySmtpServer
from scripted_smtp import peer, scripted

from channels.email import DeliveryError, DeliveryUnknown, SmtpSender, UnsendableMessage
from channels.message import OutgoingEmail
from sequencer.core.models import Mailbox

DOTTY = "Line one\n.starts with a dot\n..two dots\n.\nlast line"


@pytest.fixture(params=[True, False], ids=["pipelining", "classic"])
def server(request: pytest.FixtureRequest) -> Iterator[FaultySmtpServer]:
    with FaultySmtpServer(pipelining=request.param) as smtp:
        yield smtp


def _email(smtp, to: str, *, sender: str = "sdr@mail.example", text: str = "hi") -> OutgoingEmail:
    box = Mailbox(id=1, address=sender, sending_domain="mail.example", smtp_host=smtp.host, smtp_port=smtp.port)
    return OutgoingEmail(mailbox=box, to=to, subject="s", text=text, message_id=f"{to}@mail.example")


def _send(emails: list[OutgoingEmail]) -> list[DeliveryError | None]:
    sender = SmtpSender(timeout=5)
    try:
        return sender.send_many(emails)
    finally:
        sender.close()


def test_the_server_offers_pipelining_only_when_asked(server):
    connection = smtplib.SMTP(server.host, server.port, timeout=5)
    try:
        connection.ehlo()
        assert connection.has_extn("pipelining") == server.handler.pipelining
    finally:
        connection.quit()


def test_lines_starting_with_a_dot_arrive_as_written(server):
    errors = _send([_email(server, "dana@prospect.example", text=DOTTY)])

    assert errors == [None]
    message = message_from_bytes(server.messages[0].content, policy=policy.default)
    assert message.get_body(("plain",)).get_content().replace("\r\n", "\n").rstrip("\n") == DOTTY


def test_a_refused_recipient_is_that_message_s_own_result_and_the_next_one_goes(server):
    server.refuse("gone@prospect.example", "550 5.1.1 no such user")
    server.refuse("later@prospect.example", "451 4.7.1 greylisted")

    errors = _send([_email(server, to) for to in ("gone@prospect.example", "later@prospect.example",
                                                   "dana@prospect.example")])

    assert (errors[0].code, errors[0].permanent) == (550, True) and "no such user" in str(errors[0])
    assert (errors[1].code, errors[1].permanent) == (451, False)
    assert errors[2] is None
    assert [m.rcpt_tos for m in server.messages] == [["dana@prospect.example"]]


def test_a_refused_sender_is_reported_and_the_next_message_still_goes(server):
    server.refuse("blocked@mail.example", "553 5.7.1 sender not allowed")

    errors = _send([_email(server, "dana@prospect.example", sender="blocked@mail.example"),
                    _email(server, "lee@prospect.example", sender="blocked@mail.example")])
    after = _send([_email(server, "kai@prospect.example")])

    assert [(e.code, e.permanent) for e in errors] == [(553, True), (553, True)]
    assert after == [None] and [m.rcpt_tos for m in server.messages] == [["kai@prospect.example"]]


def _refuse_gone(line: str) -> tuple[str, bool]:
    return ("550 5.1.1 no such user", False) if "GONE@" in line.upper() else ("250 OK", False)


def test_data_accepted_after_a_refused_recipient_is_ended_empty_and_reported_as_the_refusal():
    # The bug RFC 2920 warns of: DATA gets 354 even when every recipient was refused.
    with scripted(["PIPELINING"], rcpt=_refuse_gone) as script:
        errors = _send([_email(peer(script), "gone@prospect.example"), _email(peer(script), "dana@prospect.example")])

    assert (errors[0].code, errors[0].permanent) == (550, True) and errors[1] is None
    assert script["bodies"][0] == b"" and b"dana@prospect.example" in script["bodies"][1]  # nothing for "gone"


@pytest.mark.parametrize("extensions", [["PIPELINING"], []], ids=["pipelining", "classic"])
@pytest.mark.parametrize(("verb", "reply", "code", "permanent"), [
    ("mail", "554 5.7.1 sender blocked", 554, True),
    ("rcpt", "550 5.1.1 no such user", 550, True),
    ("mail", "421 4.7.0 too many connections, closing", 421, False),
])
def test_a_refusal_followed_by_a_hang_up_is_reported_as_that_refusal_not_retried(extensions, verb, reply, code,
                                                                                   permanent):
    with scripted(extensions, **{verb: lambda line: (reply, True)}) as script:
        errors = _send([_email(peer(script), "dana@prospect.example")])

    assert (errors[0].code, errors[0].permanent) == (code, permanent) and reply[4:] in str(errors[0])
    assert script["connections"] == 1 and script["bodies"] == []


@pytest.mark.parametrize("extensions", [["PIPELINING"], []], ids=["pipelining", "classic"])
def test_a_kept_alive_connection_the_server_timed_out_is_replaced_and_the_message_goes(extensions):
    mails = iter([("250 OK", False), ("421 4.4.2 idle timeout exceeded", True), ("250 OK", False)])
    with scripted(extensions, mail=lambda line: next(mails)) as script:
        errors = _send([_email(peer(script), "dana@prospect.example"), _email(peer(script), "lee@prospect.example")])

    assert errors == [None, None] and len(script["bodies"]) == 2
    assert script["connections"] == 2  # the second message went again on a new connection, once


def test_a_message_whose_final_reply_never_comes_is_unknown_and_never_sent_again():
    with scripted(["PIPELINING"], final_delay=1.5) as script:
        sender = SmtpSender(timeout=0.5)
        try:
            errors = sender.send_many([_email(peer(script), "dana@prospect.example")])
        finally:
            sender.close()

    assert isinstance(errors[0], DeliveryUnknown) and "never mailed twice" in str(errors[0])
    assert script["connections"] == 1 and len(script["bodies"]) == 1


def test_a_non_ascii_address_goes_with_smtputf8_or_is_refused_here_when_the_server_lacks_it():
    with scripted(["PIPELINING", "SMTPUTF8"]) as offers, scripted(["PIPELINING"]) as lacks:
        sent = _send([_email(peer(offers), "josé@prospect.example")])
        refused = _send([_email(peer(lacks), "josé@prospect.example"), _email(peer(lacks), "jo@prospect.example")])

    assert sent == [None] and any(c.startswith("MAIL FROM:") and c.endswith("SMTPUTF8") for c in offers["commands"])
    assert "RCPT TO:<josé@prospect.example>" in offers["commands"]
    assert isinstance(refused[0], UnsendableMessage) and "needs SMTPUTF8" in str(refused[0])
    assert refused[1] is None and len(lacks["bodies"]) == 1
