"""A signal as received, and its validation: every field checked before anything is stored.

What is trusted: nothing in a signal. It comes from a vendor's feed, a form, a file, so
every field is checked for its type, the payload for its size, depth and content (text
both databases can store; finite numbers), and a bad one refuses that signal alone with
the field named.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sequencer.sequences.signal_types import unknown_type
from sequencer.sequences.triggers import SIGNAL_TYPES
from suppression.normalize import normalize_domain, normalize_email

_RESERVED = {"type", "email", "domain", "occurred_at", "source", "dedupe_key"}
MAX_SIGNAL_BYTES = 64 * 1024  # one signal: a JSONL line, or a payload as stored JSON
MAX_DEPTH = 8  # objects and lists inside a payload ({"a": {"b": [1]}} is 3)
MAX_TEXT = 1000  # characters in type, email, domain, source, dedupe_key
MAX_KEY = 200  # characters in a payload key
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class SignalIn:
    """A signal as received, before it is stored."""

    type: str
    email: str = ""
    domain: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    occurred_at: datetime | None = None
    source: str = "cli"
    dedupe_key: str = ""

    @classmethod
    def from_mapping(cls, values: dict[str, Any], source: str) -> SignalIn:
        """Build from a flat record (a JSONL object or CSV row); extra keys are payload.

        Raises ``ValueError`` naming the field when a field has the wrong type.
        """
        given = values.get("payload")
        if given not in (None, "") and not isinstance(given, dict):
            raise ValueError(f"payload: must be an object, got {_kind(given)}")
        payload = dict(given or {})
        payload.update({k: v for k, v in values.items() if k not in _RESERVED | {"payload"} and v not in (None, "")})
        occurred = values.get("occurred_at")
        if occurred not in (None, "") and not isinstance(occurred, str):
            raise ValueError(f"occurred_at: must be an ISO 8601 time as text, got {_kind(occurred)}")
        return cls(
            type=_text(values, "type"),
            email=_text(values, "email"),
            domain=_text(values, "domain"),
            payload=payload,
            occurred_at=parse_time(occurred) if occurred else None,
            source=_text(values, "source") or source,
            dedupe_key=_text(values, "dedupe_key", numbers=True),
        )


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", bool: "true/false", int: "a number", float: "a number",
            str: "text"}.get(type(value), type(value).__name__)


def _text(values: dict[str, Any], name: str, numbers: bool = False) -> str:
    """A text field of a record, stripped; a list, object or (unless ``numbers``) number is refused."""
    value = values.get(name)
    if value is None:
        return ""
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(f"{name}: must be text, got {_kind(value)}")
    return value.strip()


def parse_time(raw: Any) -> datetime:
    """ISO 8601 time, in UTC; a value without an offset is taken as UTC.

    An impossible date (February 30th) or a time before 1970 is a ``ValueError`` naming
    ``occurred_at``.
    """
    text = str(raw)
    try:
        moment = datetime.fromisoformat(text[:64])
        moment = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"occurred_at: not an ISO 8601 time: {text[:64]!r} ({exc})") from None
    if moment < _EARLIEST:
        raise ValueError(f"occurred_at: {moment.isoformat()} is before 1970")
    return moment


def check_payload(payload: Any) -> None:
    """Refuse a payload that is not plain, bounded JSON both databases store as it is.

    Keys are text; values are text, finite numbers, integers of at most 64 bits, true,
    false, null, lists and objects, at most ``MAX_DEPTH`` deep and ``MAX_SIGNAL_BYTES``
    as JSON; text holds no NUL character (PostgreSQL cannot store one) and no lone
    surrogate (it is not UTF-8). The message names the path of the bad value.
    """
    if not isinstance(payload, dict):
        raise ValueError(f"payload: must be an object, got {_kind(payload)}")
    pending: list[tuple[str, Any, int]] = [("payload", payload, 1)]
    while pending:
        path, value, depth = pending.pop()
        if isinstance(value, (dict, list)) and depth > MAX_DEPTH:
            raise ValueError(f"{path}: nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise ValueError(f"{path}: keys must be text, got {_kind(key)}")
                _check_text(f"{path}.{key[:40]}", key, MAX_KEY, what="key")
                pending.append((f"{path}.{key}", item, depth + 1))
        elif isinstance(value, list):
            pending.extend((f"{path}[{index}]", item, depth + 1) for index, item in enumerate(value))
        elif isinstance(value, str):
            _check_text(path, value, MAX_SIGNAL_BYTES)
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if not -(2**63) <= value < 2**63:
                raise ValueError(f"{path}: the number is too large (at most 64 bits)")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"{path}: not a finite number ({value})")
        else:
            raise ValueError(f"{path}: not a JSON value ({type(value).__name__})")
    size = len(json.dumps(payload, ensure_ascii=False).encode())
    if size > MAX_SIGNAL_BYTES:
        raise ValueError(f"payload: {size} bytes as JSON; a signal's payload may be at most {MAX_SIGNAL_BYTES}")


def _check_text(path: str, text: str, limit: int, what: str = "text") -> None:
    if len(text) > limit:
        raise ValueError(f"{path}: {what} of {len(text)} characters (at most {limit})")
    if "\x00" in text:
        raise ValueError(f"{path}: a NUL character in the {what}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{path}: the {what} is not valid Unicode (a lone surrogate)") from None


def validate(signal: SignalIn, now: datetime, types: frozenset[str] = SIGNAL_TYPES) -> SignalIn:
    """Normalise and check a signal; raise ``ValueError`` naming the bad field.

    ``types`` are the workspace's signal types (``signal_types.known_types``: built-in and declared).
    """
    for name in ("type", "email", "domain", "source", "dedupe_key"):
        value = getattr(signal, name)
        if not isinstance(value, str):
            raise ValueError(f"{name}: must be text, got {_kind(value)}")
        _check_text(name, value, MAX_TEXT)
    check_payload(signal.payload)
    if signal.type not in types:
        raise ValueError(f"type: {unknown_type(signal.type, types)}")
    if not signal.email and not signal.domain:
        raise ValueError("email or domain: a signal must name a prospect (email) or an account (domain)")
    try:
        email = normalize_email(signal.email) if signal.email else ""
    except ValueError as exc:
        raise ValueError(f"email: {exc}") from None
    try:
        domain = normalize_domain(signal.domain) if signal.domain else ""
    except ValueError as exc:
        raise ValueError(f"domain: {exc}") from None
    occurred = signal.occurred_at or now
    if occurred > now:
        raise ValueError(f"occurred_at: {occurred.isoformat()} is in the future")
    key = signal.dedupe_key or _derived_key(signal.type, email, domain, occurred, signal.payload)
    return SignalIn(signal.type, email, domain, signal.payload, occurred, signal.source, key)


def _derived_key(kind: str, email: str, domain: str, occurred: datetime, payload: dict) -> str:
    body = json.dumps([kind, email, domain, occurred.isoformat(), payload], sort_keys=True, default=str)
    return "auto:" + hashlib.sha256(body.encode()).hexdigest()
