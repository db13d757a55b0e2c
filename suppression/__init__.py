"""Who must never be contacted: suppression lists, imports, unsubscribe tokens, checks.

The public surface, re-exported here so callers need not know the module layout:

- ``normalize_email`` / ``normalize_domain``: the one spelling every lookup relies on;
- ``find_suppression``: the hot-path lookup run at enrollment and before every touch;
- ``suppression_guard``: the same lookup as a send guard;
- ``unsubscribe``: record an opt-out (one-click endpoint, inbound replies);
- ``make_token`` / ``read_token`` / ``unsubscribe_headers`` / ``unsubscribe_url``.
"""

from suppression.guard import suppression_guard
from suppression.normalize import normalize_domain, normalize_email
from suppression.store import (
    KINDS,
    REASONS,
    add_entry,
    find_suppression,
    make_spec,
    remove_entry,
    unsubscribe,
)
from suppression.tokens import (
    InvalidToken,
    make_token,
    read_token,
    unsubscribe_headers,
    unsubscribe_url,
)

__all__ = [
    "KINDS",
    "REASONS",
    "InvalidToken",
    "add_entry",
    "find_suppression",
    "make_spec",
    "make_token",
    "normalize_domain",
    "normalize_email",
    "read_token",
    "remove_entry",
    "suppression_guard",
    "unsubscribe",
    "unsubscribe_headers",
    "unsubscribe_url",
]
