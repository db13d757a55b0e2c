"""The ``dns_server`` fixture: a fresh authoritative DNS server on loopback per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dns_server import DNSServer


@pytest.fixture
def dns_server() -> Iterator[DNSServer]:
    """A started server with no zones; the test adds the zones it needs."""
    server = DNSServer().start()
    yield server
    server.stop()
