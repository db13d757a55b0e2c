"""One spelling for every address and domain, so a lookup can be a plain equality.

Suppression only works if the address written on the list and the address about to
be mailed compare equal. Every module that stores or looks up an address goes through
``normalize_email``; every domain goes through ``normalize_domain``. The rules are
deliberately conservative: case and surrounding whitespace are folded, the domain is
IDNA-encoded, and nothing provider-specific (Gmail dot-folding, ``+tag`` stripping) is
applied, because those rules are not true for every mailbox provider and a wrong fold
would suppress a stranger or, worse, let a suppressed person through under an alias.

Garbage raises ``ValueError`` with the offending value in the message, so a CSV import
or an API caller can say exactly which input was refused.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import idna
import tldextract

MAX_EMAIL_LENGTH = 320
MAX_LOCAL_LENGTH = 64
MAX_DOMAIN_LENGTH = 253
MAX_LABEL_LENGTH = 63

# RFC 5322 "atext" plus the dot; non-ASCII characters are allowed separately (RFC 6531).
_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]")
_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")

# The bundled public-suffix snapshot only: looking a suffix up must never touch the network.
_PSL = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def normalize_email(raw: str) -> str:
    """Return the canonical spelling of an address, or raise ``ValueError`` naming it.

    Canonical means: surrounding whitespace removed, lowercased, domain IDNA-encoded.
    Quoted local parts, IP-literal domains and display names (``Ann <a@x.com>``) are
    refused rather than guessed at: outbound prospecting never needs them.
    """
    text = raw.strip()
    if not text:
        raise ValueError(f"invalid email {raw!r}: empty")
    if len(text) > MAX_EMAIL_LENGTH:
        raise ValueError(
            f"invalid email {raw[:40]!r}...: longer than {MAX_EMAIL_LENGTH} characters"
        )
    if text.count("@") != 1:
        problem = "no @" if "@" not in text else "more than one @"
        raise ValueError(f"invalid email {raw!r}: {problem}")
    local, domain = text.split("@")
    try:
        local = _normalize_local(local)
        domain = normalize_domain(domain)
    except ValueError as exc:
        raise ValueError(f"invalid email {raw!r}: {exc}") from None
    address = f"{local}@{domain}"
    if len(address) > MAX_EMAIL_LENGTH:
        raise ValueError(
            f"invalid email {raw[:40]!r}...: longer than {MAX_EMAIL_LENGTH} characters"
        )
    return address


def _normalize_local(local: str) -> str:
    if not local:
        raise ValueError("empty local part")
    if len(local) > MAX_LOCAL_LENGTH:
        raise ValueError(f"local part longer than {MAX_LOCAL_LENGTH} characters")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise ValueError("local part has a leading, trailing or doubled dot")
    for char in local:
        if char.isascii():
            if not _ATEXT.fullmatch(char):
                raise ValueError(f"character {char!r} not allowed in the local part")
        elif unicodedata.category(char)[0] in "CZ":
            raise ValueError(f"invisible or space character {char!r} in the local part")
    return local.lower()


def normalize_domain(raw: str) -> str:
    """Return the canonical ASCII form of a host name, or raise ``ValueError`` naming it.

    Lowercased, one trailing dot removed, internationalised labels IDNA-encoded
    (``Bücher.de`` -> ``xn--bcher-kva.de``), every label checked (letters, digits,
    inner hyphens, 1-63 characters). At least two labels are required: mail to a
    dotless host is never legitimate outreach.
    """
    text = raw.strip().removesuffix(".")
    if not text:
        raise ValueError(f"invalid domain {raw!r}: empty")
    if text.startswith("["):
        raise ValueError(f"invalid domain {raw!r}: IP literals are not accepted")
    labels = text.split(".")
    if len(labels) < 2:
        raise ValueError(f"invalid domain {raw!r}: needs at least two labels")
    encoded = [_normalize_label(label, raw) for label in labels]
    domain = ".".join(encoded)
    if len(domain) > MAX_DOMAIN_LENGTH:
        raise ValueError(f"invalid domain {raw!r}: longer than {MAX_DOMAIN_LENGTH} characters")
    if encoded[-1].isdigit():
        raise ValueError(f"invalid domain {raw!r}: top-level label is numeric")
    return domain


def _normalize_label(label: str, raw: str) -> str:
    if not label:
        raise ValueError(f"invalid domain {raw!r}: empty label")
    if label.isascii():
        ascii_label = label.lower()
    else:
        try:
            ascii_label = idna.encode(label, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise ValueError(f"invalid domain {raw!r}: label {label!r}: {exc}") from None
    if len(ascii_label) > MAX_LABEL_LENGTH:
        raise ValueError(f"invalid domain {raw!r}: label longer than {MAX_LABEL_LENGTH}")
    if not _LDH_LABEL.fullmatch(ascii_label):
        raise ValueError(f"invalid domain {raw!r}: label {label!r} is not letters, digits, hyphens")
    return ascii_label


def domain_of(address: str) -> str:
    """The domain part of an address that is already normalised."""
    return address.rpartition("@")[2]


@lru_cache(maxsize=65536)
def registrable_domain(domain: str) -> str:
    """The domain a company registers (``example.co.uk`` for ``mail.example.co.uk``).

    Hosts under a suffix the bundled list does not know (``corp.internal``) fall back
    to their last two labels, so a lookup still stops somewhere sensible.
    """
    parts = _PSL(domain)
    if parts.domain and parts.suffix:
        return f"{parts.domain}.{parts.suffix}"
    return ".".join(domain.split(".")[-2:])


def is_public_suffix(domain: str) -> bool:
    """True for ``com`` or ``co.uk``: suppressing one would block a whole country."""
    parts = _PSL(domain)
    return bool(parts.suffix) and not parts.domain


def parent_domains(domain: str) -> list[str]:
    """``domain`` and each parent, most specific first, down to the registrable domain."""
    stop = registrable_domain(domain)
    labels = domain.split(".")
    found = []
    for start in range(len(labels)):
        candidate = ".".join(labels[start:])
        found.append(candidate)
        if candidate == stop:
            break
    return found
