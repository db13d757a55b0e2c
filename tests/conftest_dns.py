"""DNS test support: the ``dns_server`` fixture and a healthy sending domain to vary.

The fixture is a fresh authoritative server on loopback per test; the zone builders
describe a healthy domain whose parts a test replaces or removes to break one check.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Iterator
from functools import cache

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from loopback_faults import FaultyDNSServer

from sequencer.core.config import Settings
from sequencer.loopback.dns_server import DNSServer

DOMAIN = "acmemail.com"
PRIMARY = "acme.com"
SELECTOR = "s1"
SENDING_IP = "192.0.2.10"


def _probable_prime(bits: int, rng: random.Random) -> int:
    while True:
        candidate = rng.getrandbits(bits) | (1 << (bits - 1)) | 1
        if all(pow(witness, candidate - 1, candidate) == 1 for witness in (2, 3, 5, 7, 11, 13)):
            return candidate


@cache
def rsa_key(bits: int) -> str:
    """A real RSA public key of ``bits`` bits, as the base64 DER a DKIM p= holds.

    ``cryptography`` refuses to generate keys under 1024 bits, so smaller ones are
    built from two random primes: still a valid key, just a weak one.
    """
    if bits >= 1024:
        public = rsa.generate_private_key(65537, bits).public_key()
    else:
        rng = random.Random(bits)
        modulus = 0
        while modulus.bit_length() != bits:
            modulus = _probable_prime(bits // 2, rng) * _probable_prime(bits // 2, rng)
        public = rsa.RSAPublicNumbers(65537, modulus).public_key()
    der = public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def txt(value: str) -> str:
    """A TXT rdata for ``value``, split into the 255-byte strings DNS requires."""
    return " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))


def domain_zone(
    *,
    mx: str | None = "10 mx",
    spf: list[str] | None = None,
    dkim: str | None = None,
    dmarc: list[str] | None = None,
    extra: str = "",
) -> str:
    """Records of a healthy sending domain, each part replaceable or removable (None)."""
    spf = ["v=spf1 ip4:192.0.2.10 -all"] if spf is None else spf
    dkim = f"v=DKIM1; k=rsa; p={rsa_key(2048)}" if dkim is None else dkim
    dmarc = ["v=DMARC1; p=reject; rua=mailto:dmarc@acmemail.com"] if dmarc is None else dmarc
    lines = ["mx A 192.0.2.10"]
    if mx is not None:
        lines.append(f"@ MX {mx}")
    lines += [f"@ TXT {txt(record)}" for record in spf]
    if dkim:
        lines.append(f"{SELECTOR}._domainkey TXT {txt(dkim)}")
    lines += [f"_dmarc TXT {txt(record)}" for record in dmarc]
    return "\n".join(lines) + "\n" + extra


def serve_healthy(server: DNSServer, **parts: object) -> None:
    """The sending domain plus empty blocklist zones and the sending IP's reverse zone."""
    server.add_zone(DOMAIN, domain_zone(**parts))  # type: ignore[arg-type]
    server.add_zone("dbl.test", "")
    server.add_zone("zen.test", "")
    server.add_zone("2.0.192.in-addr.arpa", "10 PTR mx.acmemail.com.\n")


def settings_for(server: DNSServer, **overrides: object) -> Settings:
    """Settings that ask only ``server``, with test blocklists and one sending IP."""
    values: dict[str, object] = {
        "primary_domain": PRIMARY,
        "dns_nameservers": [server.address],
        "dns_timeout": 2.0,
        "dkim_selector": SELECTOR,
        "domain_blocklists": ["dbl.test"],
        "ip_blocklists": ["zen.test"],
        "sending_ips": [SENDING_IP],
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def dns_server() -> Iterator[FaultyDNSServer]:
    """A started server with no zones; the test adds the zones it needs (and the faults)."""
    server = FaultyDNSServer().start()
    yield server
    server.stop()
