"""The per-touch return path (VERP): ``local+t<touch id>-<mac>@domain`` names the touch a bounce is about.

The one place that writes the format and the one place that reads it back: the send
path builds the envelope sender here, the inbound path finds the token in a bounce's
recipient headers and turns it back into a touch id here.

The token is signed. Anyone can send mail to ``sam+t2@...`` and claim it is a bounce, so
a bare touch id proves nothing. The MAC is ``HMAC-SHA256(secret_key, purpose | touch id)``
truncated to 50 bits and written in lowercase base32 (local parts are case-folded by
many systems in practice, and base32 survives that). Only a token whose MAC verifies
names a touch: a forged one, one signed with another secret, or the old unsigned
``t<id>`` format reads back as None. Guessing a MAC takes 2^49 tries on average, each
one a bounce message; the secret never leaves the process. Rotating ``secret_key``
turns the return paths of mail already sent into unverifiable ones (their bounces
then match by Message-ID only).

channels imports nothing from sequencer: the caller passes the secret in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from email.utils import getaddresses

MAX_LOCAL_PART = 64  # octets, RFC 5321 section 4.5.3.1.1
MAC_CHARS = 10  # base32 characters: 50 bits
_PURPOSE = b"sequencer-verp-v1\x00"
_TOKEN = re.compile(rf"^t(\d{{1,19}})-([a-z2-7]{{{MAC_CHARS}}})$")


def _mac(secret: str, digits: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), _PURPOSE + digits.encode("ascii"), hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:MAC_CHARS]


def token(touch_id: int, secret: str) -> str:
    """The signed token for one touch: ``t<id>-<mac>``."""
    if not secret:
        raise ValueError("secret_key is empty: return paths could be forged")
    if touch_id < 0:
        raise ValueError(f"invalid touch id {touch_id}")
    digits = str(int(touch_id))
    return f"t{digits}-{_mac(secret, digits)}"


def return_path(address: str, touch_id: int, secret: str) -> str:
    """The envelope sender for one touch, sent from ``address``.

    When the token would push the local part past the 64-octet limit the plain address
    is used instead: the mail still goes, and its bounces match by Message-ID.
    """
    local, domain = address.split("@", 1)
    tagged = f"{local}+{token(touch_id, secret)}"
    if len(tagged.encode("utf-8")) > MAX_LOCAL_PART:
        return address
    return f"{tagged}@{domain}"


def token_in(header_values: list[str], our_domains: frozenset[str]) -> str | None:
    """The VERP token in the first of these addresses that carries one at one of our domains
    (any domain when ``our_domains`` is empty). Not verified: ``touch_id_of`` does that."""
    for _, addr in getaddresses(header_values):
        local, _, domain = addr.strip().lower().rpartition("@")
        if "+" not in local or not domain:
            continue
        if our_domains and not any(domain == d or domain.endswith("." + d) for d in our_domains):
            continue
        found = local.split("+", 1)[1]
        if found:
            return found
    return None


def touch_id_of(found: str | None, secret: str) -> int | None:
    """The touch id a token names when its MAC verifies with ``secret``, else None.

    Trusted only after the constant-time comparison: the id in the token is attacker
    text until the MAC over it matches the one only our secret can make.
    """
    parsed = _TOKEN.match((found or "").strip().lower())
    if parsed is None or not secret:
        return None
    digits, mac = parsed.groups()
    if not hmac.compare_digest(mac, _mac(secret, digits)):
        return None
    return int(digits)


def touch_id_in_address(address: str, secret: str) -> int | None:
    """The touch id in a full return-path address (``sam+t7-<mac>@...`` -> 7), verified."""
    local = address.partition("@")[0]
    return touch_id_of(local.partition("+")[2], secret) if "+" in local else None
