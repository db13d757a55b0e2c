"""Signals in: validate, dedupe and store before anything acts on them.

A signal is committed before the caller is told it was accepted; acting on it
(enrolling, waking waiting steps) happens afterwards and is re-done for any stored
signal whose ``processed_at`` is still empty, so a crash in between loses nothing.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from sequencer.core.models import Signal
from sequencer.sequences.triggers import SIGNAL_TYPES
from suppression.normalize import normalize_domain, normalize_email

_RESERVED = {"type", "email", "domain", "occurred_at", "source", "dedupe_key"}


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
        """Build from a flat record (a JSONL object or CSV row); extra keys are payload."""
        payload = dict(values.get("payload") or {})
        payload.update({k: v for k, v in values.items() if k not in _RESERVED | {"payload"} and v not in (None, "")})
        return cls(
            type=str(values.get("type") or "").strip(),
            email=str(values.get("email") or "").strip(),
            domain=str(values.get("domain") or "").strip(),
            payload=payload,
            occurred_at=parse_time(values["occurred_at"]) if values.get("occurred_at") else None,
            source=str(values.get("source") or source),
            dedupe_key=str(values.get("dedupe_key") or "").strip(),
        )


@dataclass
class Stored:
    signal: Signal
    duplicate: bool


def parse_time(raw: Any) -> datetime:
    """ISO 8601 time; a value without an offset is taken as UTC."""
    try:
        moment = datetime.fromisoformat(str(raw))
    except ValueError:
        raise ValueError(f"occurred_at: not an ISO 8601 time: {raw!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def validate(signal: SignalIn, now: datetime) -> SignalIn:
    """Normalise and check a signal; raise ``ValueError`` naming the bad field."""
    if signal.type not in SIGNAL_TYPES:
        raise ValueError(f"type: unknown signal type {signal.type!r} (known: {', '.join(sorted(SIGNAL_TYPES))})")
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


def store(session: Session, now: datetime, signal: SignalIn) -> Stored:
    """Validate and commit one signal; a repeated dedupe key returns the stored one."""
    clean = validate(signal, now)
    existing = session.exec(select(Signal).where(Signal.dedupe_key == clean.dedupe_key)).first()
    if existing is not None:
        return Stored(existing, True)
    row = Signal(
        type=clean.type,
        dedupe_key=clean.dedupe_key,
        email=clean.email,
        domain=clean.domain or (clean.email.split("@", 1)[1] if clean.email else ""),
        payload=clean.payload,
        source=clean.source,
        occurred_at=clean.occurred_at,
        received_at=now,
    )
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = session.exec(select(Signal).where(Signal.dedupe_key == clean.dedupe_key)).one()
        return Stored(existing, True)
    return Stored(row, False)


def read_file(path: Path) -> Iterator[tuple[int, dict[str, Any] | ValueError]]:
    """Yield ``(line, record)`` from a JSONL or CSV file; a bad line yields a ``ValueError``."""
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        with path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield line_no, ValueError(f"not valid JSON: {exc.msg} at column {exc.colno}")
                    continue
                if not isinstance(record, dict):
                    yield line_no, ValueError("each line must be a JSON object")
                    continue
                yield line_no, record
    elif path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or "type" not in reader.fieldnames:
                yield 1, ValueError("CSV header must include a 'type' column")
                return
            for values in reader:
                if None in values:
                    yield reader.line_num, ValueError("more fields than the header has")
                else:
                    yield reader.line_num, values
    else:
        raise ValueError(f"{path}: unknown signal file type {path.suffix!r} (use .jsonl or .csv)")


def import_file(
    session: Session,
    now: datetime,
    path: Path,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[Signal], int, list[str]]:
    """Store every good record of a signal file; return (new signals, duplicates, errors)."""
    stored: list[Signal] = []
    duplicates = 0
    errors: list[str] = []
    for line, record in read_file(path):
        if progress:
            progress(1)
        if isinstance(record, ValueError):
            errors.append(f"{path}:{line}: {record}")
            continue
        try:
            result = store(session, now, SignalIn.from_mapping(record, source=f"import:{path.name}"))
        except ValueError as exc:
            errors.append(f"{path}:{line}: {exc}")
            continue
        if result.duplicate:
            duplicates += 1
        else:
            stored.append(result.signal)
    return stored, duplicates, errors


def unprocessed(session: Session, limit: int = 1000) -> list[Signal]:
    return list(
        session.exec(select(Signal).where(Signal.processed_at.is_(None)).order_by(Signal.id).limit(limit))
    )
