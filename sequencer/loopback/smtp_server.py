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
class _Handler:
    messages: list[Received] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # address -> SMTP reply, e.g. "550 5.1.1 no such user"
    pipelining: bool = True

    async def handle_EHLO(self, server, session, envelope: Envelope, hostname: str, responses: list[str]):
        session.host_name = hostname
        if self.pipelining:  # aiosmtpd reads commands one line at a time, so a pipelined group is fine
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope: Envelope, address: str, mail_options):
        if address.lower() in self.refuse:
            return self.refuse[address.lower()]
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope: Envelope, address: str, rcpt_options):
        if address.lower() in self.refuse:
            return self.refuse[address.lower()]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope: Envelope) -> str:
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalSmtpServer:
    """``with LocalSmtpServer() as smtp:`` gives ``smtp.host``, ``smtp.port`` and ``smtp.messages``.

    It offers PIPELINING, as most relays do; ``pipelining=False`` makes a server without it.
    """

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, *, pipelining: bool = True) -> None:
        self.host = host
        self.port = port or free_port()
        self.handler = _Handler(pipelining=pipelining)
        self._controller = Controller(self.handler, hostname=host, port=self.port)

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    def refuse(self, address: str, reply: str) -> None:
        """Answer MAIL FROM or RCPT TO for ``address`` with ``reply`` (e.g. ``"550 5.1.1 user unknown"``)."""
        self.handler.refuse[address.lower()] = reply

    def __enter__(self) -> Self:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
