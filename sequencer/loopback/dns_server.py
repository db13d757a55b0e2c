"""A real authoritative DNS server on loopback, for the demo and tests: the wire, not mocks.

It is handed zone text and answers over UDP and TCP on one free port, from a thread,
the way an authoritative server would: NOERROR with the records, NOERROR with no answer
and the zone's SOA (NODATA), NXDOMAIN with the SOA, REFUSED outside its zones. The
faults only tests need (SERVFAIL, silence, a log of the queries) are added by a
subclass in ``tests/loopback_faults.py`` through ``respond``.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from dataclasses import dataclass, field

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone

DEFAULT_TTL = 300
CNAME_CHAIN_LIMIT = 8


@dataclass
class DNSServer:
    """Serve ``zones`` (origin -> dnspython zone) on ``host`` until ``stop()``.

    Zones may be added while the server runs.
    """

    host: str = "127.0.0.1"
    zones: dict[dns.name.Name, dns.zone.Zone] = field(default_factory=dict)
    port: int = 0
    _servers: list[socketserver.BaseServer] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def address(self) -> str:
        """``host:port``, the form ``settings.dns_nameservers`` takes."""
        return f"{self.host}:{self.port}"

    def add_zone(
        self, origin: str, records: str, *, ttl: int = DEFAULT_TTL, negative_ttl: int = DEFAULT_TTL
    ) -> None:
        """Serve ``records`` (zone-file text, names relative to ``origin``) as a zone.

        An SOA and NS are added at the apex, so test zones state only what they test.
        ``ttl`` is the default record TTL; the SOA minimum (and TTL) is ``negative_ttl``,
        the TTL of NXDOMAIN and NODATA answers.
        """
        head = (
            f"$TTL {ttl}\n"
            f"@ {negative_ttl} IN SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 "
            f"{negative_ttl}\n@ IN NS ns.{origin}.\n"
        )
        zone = dns.zone.from_text(head + records, origin=origin, relativize=False)
        with self._lock:
            self.zones[zone.origin] = zone

    def start(self) -> DNSServer:
        """Bind UDP and TCP on the same free port and serve them from daemon threads."""
        for _ in range(20):
            udp = _UDPServer((self.host, 0), _UDPHandler)
            port = udp.server_address[1]
            try:
                tcp = _TCPServer((self.host, port), _TCPHandler)
            except OSError:
                udp.server_close()
                continue
            break
        else:  # pragma: no cover - the OS kept handing out ports taken for TCP
            raise RuntimeError("no free port for both UDP and TCP")
        self.port = port
        for server in (udp, tcp):
            server.dns = self  # type: ignore[attr-defined]
            self._servers.append(server)
            thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
            thread.start()
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def answer(self, wire: bytes, max_size: int | None) -> bytes | None:
        """The response to one query in wire form, or ``None`` to stay silent."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        if not query.question:
            return None
        response = self.respond(query)
        if response is None:
            return None
        if max_size is None:
            return response.to_wire()
        limit = max(512, query.payload if query.edns >= 0 else 512)
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            response.answer.clear()
            response.authority.clear()
            response.flags |= dns.flags.TC
            return response.to_wire()

    def respond(self, query: dns.message.Message) -> dns.message.Message | None:
        """The response to one query with a question, before sizing; ``None`` stays silent."""
        question = query.question[0]
        response = dns.message.make_response(query)
        with self._lock:
            self._fill(response, question.name, question.rdtype)
        return response

    def _fill(self, response: dns.message.Message, qname: dns.name.Name, rdtype: int) -> None:
        zone = self._zone_for(qname)
        if zone is None:
            response.set_rcode(dns.rcode.REFUSED)
            return
        response.flags |= dns.flags.AA
        name = qname
        for _ in range(CNAME_CHAIN_LIMIT):
            node = zone.get_node(name)
            if node is None:
                if not any(owner.is_subdomain(name) for owner in zone.nodes):
                    response.set_rcode(dns.rcode.NXDOMAIN)
                break
            found = node.get_rdataset(dns.rdataclass.IN, rdtype)
            if found is not None:
                response.answer.append(_rrset(name, found))
                return
            cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
            if cname is None or rdtype == dns.rdatatype.CNAME:
                break
            response.answer.append(_rrset(name, cname))
            name = cname[0].target
            if not name.is_subdomain(zone.origin):
                return
        soa = zone.get_rdataset(zone.origin, dns.rdatatype.SOA)
        response.authority.append(_rrset(zone.origin, soa))

    def _zone_for(self, qname: dns.name.Name) -> dns.zone.Zone | None:
        matches = [origin for origin in self.zones if qname.is_subdomain(origin)]
        if not matches:
            return None
        return self.zones[max(matches, key=len)]


def _rrset(name: dns.name.Name, rdataset: dns.rdataset.Rdataset) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(name, rdataset.rdclass, rdataset.rdtype)
    rrset.update(rdataset)
    return rrset


class _UDPServer(socketserver.ThreadingUDPServer):
    daemon_threads = True
    allow_reuse_address = True


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _UDPHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        reply = self.server.dns.answer(data, max_size=512)  # type: ignore[attr-defined]
        if reply is not None:
            sock.sendto(reply, self.client_address)


class _TCPHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(5)
        try:
            header = _read_exact(sock, 2)
            wire = _read_exact(sock, struct.unpack("!H", header)[0])
        except (OSError, EOFError):
            return
        reply = self.server.dns.answer(wire, max_size=None)  # type: ignore[attr-defined]
        if reply is not None:
            sock.sendall(struct.pack("!H", len(reply)) + reply)


def _read_exact(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data
