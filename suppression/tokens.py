"""Signed unsubscribe tokens and the RFC 8058 one-click headers that carry them.

A token is ``base64url(address) + "." + base64url(HMAC-SHA256(secret, purpose|address)[:16])``.
It carries the address itself, so the unsubscribe endpoint needs no lookup table and a
link keeps working after the prospect, the enrollment or the whole sequence is gone.
The MAC is what makes the link safe to act on without a login: nobody without the
secret can build a token for an address they merely know. It never expires, on
purpose: an unsubscribe link in a two-year-old email must still work.

Rotating ``secret_key`` invalidates every link already sent; do not do it lightly.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from functools import lru_cache
from typing import Protocol
from urllib.parse import quote

from suppression.normalize import normalize_email

MAC_BYTES = 16  # 128 bits: far beyond guessing, and keeps the URL short
_PURPOSE = b"sequencer-unsubscribe-v1\x00"


class UnsubscribeSettings(Protocol):
    """The settings the links are made from; ``sequencer.core.config.Settings`` has them.

    A protocol, not that class, because suppression imports nothing from ``sequencer``.
    """

    secret_key: str
    unsubscribe_url: str
    unsubscribe_mailto: str


class InvalidToken(ValueError):
    """The token was not made by us with this secret: forged, altered or truncated."""


@lru_cache(maxsize=4096)  # a pure function, asked three times per email sent (body, header, template)
def make_token(secret: str, email: str) -> str:
    """An opaque, URL-safe token for ``email`` (normalised first), signed with ``secret``."""
    if not secret:
        raise ValueError("secret_key is empty: unsubscribe links could be forged")
    address = normalize_email(email)
    return f"{_b64encode(address.encode('utf-8'))}.{_b64encode(_mac(secret, address))}"


def read_token(secret: str, token: str) -> str:
    """The address inside ``token``, or ``InvalidToken`` if it is not genuine.

    The MAC comparison is constant-time, so response timing does not leak how many
    leading bytes of a guess were right.
    """
    if not secret:
        raise ValueError("secret_key is empty: unsubscribe links could be forged")
    payload, dot, signature = token.partition(".")
    if not dot or not payload or not signature:
        raise InvalidToken("malformed unsubscribe token")
    try:
        address = _b64decode(payload).decode("utf-8")
        mac = _b64decode(signature)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidToken("malformed unsubscribe token") from None
    if not hmac.compare_digest(mac, _mac(secret, address)):
        raise InvalidToken("unsubscribe token signature does not match")
    return address


def unsubscribe_url(settings: UnsubscribeSettings, email: str) -> str:
    """The visible link for the email body; the same URL the one-click header uses."""
    return f"{settings.unsubscribe_url.rstrip('/')}/{make_token(settings.secret_key, email)}"


def unsubscribe_headers(settings: UnsubscribeSettings, email: str) -> dict[str, str]:
    """``List-Unsubscribe`` and ``List-Unsubscribe-Post`` for one outgoing message.

    Mailbox providers only offer one-click unsubscribe when the URL is HTTPS (RFC 8058
    section 3.1); ``settings.unsubscribe_url`` should be HTTPS in production. The mailto
    alternative is added only when ``settings.unsubscribe_mailto`` is set.
    """
    targets = [f"<{unsubscribe_url(settings, email)}>"]
    if settings.unsubscribe_mailto:
        mailbox = settings.unsubscribe_mailto.removeprefix("mailto:")
        targets.append(f"<mailto:{quote(mailbox, safe='@')}?subject=unsubscribe>")
    return {
        "List-Unsubscribe": ", ".join(targets),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def _mac(secret: str, address: str) -> bytes:
    digest = hmac.new(secret.encode("utf-8"), _PURPOSE + address.encode("utf-8"), hashlib.sha256)
    return digest.digest()[:MAC_BYTES]


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Strict base64url without padding: a character outside the alphabet is an error."""
    if not text.isascii() or any(c not in _ALPHABET for c in text):
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64encode(data) != text:  # non-canonical trailing bits: an altered token
        raise ValueError("not canonical base64url")
    return data


_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
