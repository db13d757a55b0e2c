"""The per-touch return path (VERP): ``local+TOKEN@domain`` names the touch a bounce is about.

The one place that writes the format and the one place that reads it back: the send
path builds the envelope sender here, the inbound path finds the token in a bounce's
recipient headers and turns it back into a touch id here.
"""

from __future__ import annotations

import re
from email.utils import getaddresses

_TOKEN = re.compile(r"^t(\d+)$")


def return_path(address: str, touch_id: int) -> str:
    """The envelope sender for one touch, sent from ``address``."""
    local, domain = address.split("@", 1)
    return f"{local}+t{touch_id}@{domain}"


def token_in(header_values: list[str], our_domains: frozenset[str]) -> str | None:
    """The VERP token in the first of these addresses that carries one at one of our domains
    (any domain when ``our_domains`` is empty)."""
    for _, addr in getaddresses(header_values):
        local, _, domain = addr.strip().lower().rpartition("@")
        if "+" not in local or not domain:
            continue
        if our_domains and not any(domain == d or domain.endswith("." + d) for d in our_domains):
            continue
        token = local.split("+", 1)[1]
        if token:
            return token
    return None


def touch_id_of(token: str | None) -> int | None:
    """The touch id a token names, or None when it is not one of ours."""
    found = _TOKEN.match(token or "")
    return int(found.group(1)) if found else None


def touch_id_in_address(address: str) -> int | None:
    """The touch id in a full return-path address (``sam+t7@...`` -> 7)."""
    local = address.partition("@")[0]
    return touch_id_of(local.partition("+")[2]) if "+" in local else None
