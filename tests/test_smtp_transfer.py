"""One message over SMTP, pipelined (RFC 2920) when the server offers it, classic otherwise.

Every case runs against a real server on loopback, once offering PIPELINING and once not,
and must come out the same: what arrives, and how each refusal is reported.
"""

from __future__ import annotations

import smtplib
import socketserver
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy

import pytest

from channels.email import DeliveryError, OutgoingEmail, SmtpSender
from sequencer.local_smtp import LocalSmtpServer
from sequencer.models import Mailbox

DOTTY = "Line one\n.starts with a dot\n..two dots\n.\nlast line"


@pytest.fixture(params=[True, False], ids=["pipelining", "classic"])
def server(request: pytest.FixtureRequest) -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer(pipelining=request.param) as smtp:
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


class _AcceptsDataAnyway(socketserver.StreamRequestHandler):
    """A server with the bug RFC 2920 warns of: DATA gets 354 even when every recipient was refused."""

    def handle(self) -> None:
        self.wfile.write(b"220 buggy ESMTP\r\n")
        rcpt_ok = False
        for raw in self.rfile:
            command = raw.decode().strip().upper()
            if command.startswith("EHLO"):
                reply = "250-buggy\r\n250 PIPELINING"
            elif command.startswith("RCPT"):
                rcpt_ok = "GONE@" not in command
                reply = "250 OK" if rcpt_ok else "550 5.1.1 no such user"
            elif command == "DATA":
                self.wfile.write(b"354 go ahead\r\n")
                body = b"".join(iter(self.rfile.readline, b".\r\n"))
                self.server.bodies.append(body)  # type: ignore[attr-defined]
                reply = "250 queued" if rcpt_ok else "554 no valid recipients"
            elif command == "QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                reply = "250 OK"
            self.wfile.write(reply.encode() + b"\r\n")


def test_data_accepted_after_a_refused_recipient_is_ended_empty_and_reported_as_the_refusal():
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _AcceptsDataAnyway) as buggy:
        buggy.bodies = []  # type: ignore[attr-defined]
        thread = threading.Thread(target=buggy.serve_forever, daemon=True)
        thread.start()
        peer = type("Peer", (), {"host": "127.0.0.1", "port": buggy.server_address[1]})
        try:
            errors = _send([_email(peer, "gone@prospect.example"), _email(peer, "dana@prospect.example")])
        finally:
            buggy.shutdown()

    assert (errors[0].code, errors[0].permanent) == (550, True) and errors[1] is None
    assert buggy.bodies[0] == b"" and b"dana@prospect.example" in buggy.bodies[1]  # nothing sent to "gone"
