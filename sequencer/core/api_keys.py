"""API keys for the HTTP API: create (shown once), list, revoke, and check a presented key.

A key is ``sqk_`` plus 32 random bytes from ``secrets`` (URL-safe base64). Only its SHA-256
digest is stored, with its first characters (the prefix) to find the row and to tell keys
apart in ``sequencer api-keys list``. A plain digest is enough because the key is random
and long: there is no dictionary to try, unlike a password. The CLI and the tests create
keys through ``create`` and the HTTP API checks them through ``authenticate``; nothing else
reads or writes the table.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from sequencer.core.models import ApiKey

# What a key may do. "admin" may do everything "inbound" (POST /inbound) and "signals" (POST /signals:
# a form, a CRM or a vendor feed that must not read prospects) may, and what later endpoints will need.
SCOPES = ("inbound", "signals", "admin")
KEY_PREFIX = "sqk_"
PREFIX_LENGTH = len(KEY_PREFIX) + 8  # 48 random bits shown; the other ~208 stay secret
# How stale last_used_at may get: one write a minute per key, not one per request.
LAST_USED_GRANULARITY = timedelta(minutes=1)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class ApiKeyError(ValueError):
    """A key that cannot be created or found; the message names the field or the key."""


@dataclass(frozen=True)
class NewKey:
    record: ApiKey
    key: str  # the only time the key exists outside its holder's hands


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create(session: Session, now: datetime, name: str, scopes: list[str] | tuple[str, ...]) -> NewKey:
    """Store a new key named ``name`` and return it with the key itself; commits."""
    if not _NAME.fullmatch(name) or name.isdigit():
        raise ApiKeyError(f"name {name!r}: use 1-100 letters, digits, '.', '_' or '-', starting with a letter "
                          "or digit, and not only digits (a number means an id)")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ApiKeyError(f"scope {unknown[0]!r} is not one of {', '.join(SCOPES)}")
    if not scopes:
        raise ApiKeyError(f"give at least one scope ({', '.join(SCOPES)})")
    if session.exec(select(ApiKey).where(ApiKey.name == name)).first() is not None:
        raise ApiKeyError(f"an API key named {name!r} already exists (revoked keys keep their names)")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey(name=name, prefix=key[:PREFIX_LENGTH], key_hash=digest(key),
                    scopes=[scope for scope in SCOPES if scope in scopes], created_at=now)
    session.add(record)
    try:
        session.commit()
    except IntegrityError:  # the same name created concurrently
        session.rollback()
        raise ApiKeyError(f"an API key named {name!r} already exists (revoked keys keep their names)") from None
    return NewKey(record, key)


def all_keys(session: Session) -> list[ApiKey]:
    return list(session.exec(select(ApiKey).order_by(ApiKey.id)))


def find(session: Session, name_or_id: str) -> ApiKey:
    """The key with this name, or this id when given a number (names are never only digits)."""
    if name_or_id.isdigit():
        record = session.get(ApiKey, int(name_or_id))
    else:
        record = session.exec(select(ApiKey).where(ApiKey.name == name_or_id)).first()
    if record is None:
        raise ApiKeyError(f"no API key named or numbered {name_or_id!r} (see `sequencer api-keys list`)")
    return record


def revoke(session: Session, now: datetime, name_or_id: str) -> tuple[ApiKey, bool]:
    """Revoke the key now; returns it and whether this call revoked it (False: it already was). Commits."""
    record = find(session, name_or_id)
    if record.revoked_at is not None:
        return record, False
    record.revoked_at = now
    session.add(record)
    session.commit()
    return record, True


def allows(record: ApiKey, scope: str) -> bool:
    return scope in record.scopes or "admin" in record.scopes


def authenticate(session: Session, now: datetime, presented: str) -> ApiKey | None:
    """The unrevoked key ``presented`` is, or None; records when it was last used (commits).

    Trusted: only a key whose digest equals a stored, unrevoked digest. The prefix narrows
    the search and is not secret; the digests are compared with ``hmac.compare_digest`` so
    the time taken says nothing about how much of a guess was right. Revocation is read
    from the database on every request, so a revoked key stops working at once.
    """
    if not presented.startswith(KEY_PREFIX) or len(presented) < PREFIX_LENGTH:
        return None
    wanted = digest(presented)
    candidates = session.exec(select(ApiKey).where(ApiKey.prefix == presented[:PREFIX_LENGTH]))
    record = next((c for c in candidates if hmac.compare_digest(c.key_hash, wanted)), None)
    if record is None or record.revoked_at is not None:
        return None
    if record.last_used_at is None or now - record.last_used_at >= LAST_USED_GRANULARITY:
        record.last_used_at = now
        session.add(record)
        session.commit()
    return record
