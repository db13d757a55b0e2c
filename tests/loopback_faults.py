"""The loopback servers with the faults only tests ask for.

The demo runs the plain servers of ``sequencer.loopback``; the tests run these
subclasses, which add what the product never uses:

- ``FaultySmtpServer``: refuse chosen addresses at MAIL FROM or RCPT TO with a given
  reply, and optionally not offer PIPELINING;
- ``FaultyDNSServer``: log every query received as ``(name, type)`` (so a test can prove
  a cached verdict asked nothing), answer SERVFAIL for chosen names or never answer them
  (a timeout): how the domain checks' "unknown" paths are reached.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
from aiosmtpd.smtp import MISSING, Envelope

from sequencer.loopback.dns_server import DNSServer
from sequencer.loopback.smtp_server import Handler, LocalSmtpServer


@dataclass
class RefusingHandler(Handler):
    refuse: dict[str, str] = field(default_factory=dict)  # address -> SMTP reply, e.g. "550 5.1.1 no such user"
    pipelining: bool = True

    async def handle_EHLO(self, server, session, envelope: Envelope, hostname: str, responses: list[str]):
        responses = await super().handle_EHLO(server, session, envelope, hostname, responses)
        if not self.pipelining:
            responses.remove("250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope: Envelope, address: str, mail_options):
        if address.lower() in self.refuse:
            return self.refuse[address.lower()]
        return MISSING  # aiosmtpd's own handling: record the sender, 250 OK

    async def handle_RCPT(self, server, session, envelope: Envelope, address: str, rcpt_options):
        if address.lower() in self.refuse:
            return self.refuse[address.lower()]
        return MISSING


class FaultySmtpServer(LocalSmtpServer):
    """``LocalSmtpServer`` that can refuse addresses; ``pipelining=False`` makes a server without it."""

    handler: RefusingHandler

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, *, pipelining: bool = True) -> None:
        super().__init__(host, port, handler=RefusingHandler(pipelining=pipelining))

    def refuse(self, address: str, reply: str) -> None:
        """Answer MAIL FROM or RCPT TO for ``address`` with ``reply`` (e.g. ``"550 5.1.1 user unknown"``)."""
        self.handler.refuse[address.lower()] = reply


@dataclass
class FaultyDNSServer(DNSServer):
    """``DNSServer`` with a query log and chosen names that fail; all may change while it runs."""

    servfail: set[dns.name.Name] = field(default_factory=set)
    drop: set[dns.name.Name] = field(default_factory=set)
    queries: list[tuple[str, str]] = field(default_factory=list)

    def fail_with_servfail(self, name: str) -> None:
        self.servfail.add(dns.name.from_text(name))

    def never_answer(self, name: str) -> None:
        self.drop.add(dns.name.from_text(name))

    def respond(self, query: dns.message.Message) -> dns.message.Message | None:
        question = query.question[0]
        self.queries.append((question.name.to_text(), dns.rdatatype.to_text(question.rdtype)))
        if question.name in self.drop:
            return None
        if question.name in self.servfail:
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.SERVFAIL)
            return response
        return super().respond(query)
