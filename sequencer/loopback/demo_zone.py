"""The demo's DNS: zones for its sending domain and its primary domain, on loopback.

Nothing here reaches the internet. The demo's sending domain gets MX, SPF, a real
2048-bit DKIM key, DMARC and reverse DNS; the primary domain is served too, so the
demo can show why outreach must not go out from it. The public blocklist zones are
served empty (not listed), which is what a clean domain would see.
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sequencer.core.config import Settings
from sequencer.loopback.dns_server import DNSServer

SENDING_DOMAIN = "outreach-acme.example"
PRIMARY_DOMAIN = "acme.example"
SENDING_IP = "192.0.2.25"
SELECTOR = "s1"


def _txt(value: str) -> str:
    return " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))


def _dkim_public_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def start(settings: Settings) -> DNSServer:
    """Serve the demo zones and point ``settings`` at the server; the caller stops it."""
    server = DNSServer().start()
    server.add_zone(SENDING_DOMAIN, "\n".join([
        "mx A " + SENDING_IP,
        "@ MX 10 mx",
        "@ TXT " + _txt(f"v=spf1 ip4:{SENDING_IP} -all"),
        f"{SELECTOR}._domainkey TXT " + _txt(f"v=DKIM1; k=rsa; p={_dkim_public_key()}"),
        "_dmarc TXT " + _txt(f"v=DMARC1; p=quarantine; rua=mailto:dmarc@{SENDING_DOMAIN}"),
    ]) + "\n")
    server.add_zone(PRIMARY_DOMAIN, "\n".join([
        "@ MX 10 mail",
        "mail A 192.0.2.80",
        "@ TXT " + _txt("v=spf1 mx ~all"),
    ]) + "\n")
    server.add_zone("2.0.192.in-addr.arpa", f"25 PTR mx.{SENDING_DOMAIN}.\n")
    for zone in (*settings.domain_blocklists, *settings.ip_blocklists):
        server.add_zone(zone, "")
    settings.dns_nameservers = [server.address]
    settings.dkim_selector = SELECTOR
    settings.sending_ips = [SENDING_IP]
    settings.dns_timeout = 2.0
    return server
