"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for the demo and tests."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes


@dataclass
class Handler:
    """Accepts every message and keeps it; offers PIPELINING, as most relays do.

    aiosmtpd's defaults answer MAIL and RCPT. The tests subclass this for the replies
    they need (a refused address, a server without PIPELINING): ``tests/loopback_faults.py``.
    """

    messages: list[Received] = field(default_factory=list)

    async def handle_EHLO(self, server, session, envelope: Envelope, hostname: str, responses: list[str]):
        session.host_name = hostname
        # aiosmtpd reads commands one line at a time, so a pipelined group is fine
        responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_DATA(self, server, session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), content))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalSmtpServer:
    """``with LocalSmtpServer() as smtp:`` gives ``smtp.host``, ``smtp.port`` and ``smtp.messages``."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, *, handler: Handler | None = None) -> None:
        self.host = host
        self.port = port or free_port()
        self.handler = handler or Handler()
        self._controller = Controller(self.handler, hostname=host, port=self.port)

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    def __enter__(self) -> Self:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
