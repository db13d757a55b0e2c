"""Storing signals: one at a time (``store``) or many at once (``store_many``), deduplicated.

A signal is committed before the caller is told it was accepted. Many signals at once (a
file import, an HTTP batch) are stored by ``store_many``: one multi-row ``INSERT ... ON
CONFLICT (dedupe_key) DO NOTHING ... RETURNING`` per batch of ``STORE_BATCH`` (SQLAlchemy
core, no ORM object per signal; COPY into a scratch table on PostgreSQL) and one commit per
batch, so 100,000 lines cost a hundred round trips, not a hundred thousand commits. Each
item succeeds or fails alone: a bad one is its ``ValueError``, the good ones of the same
batch are stored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from sequencer.core.db import chunks
from sequencer.core.models import Signal
from sequencer.intake.signal_values import SignalIn, validate
from sequencer.sequences.triggers import SIGNAL_TYPES, numeric_signal_fields, typed_payload
from sequencer.sequences.versions import current_versions

STORE_BATCH = 1000  # signals written by one INSERT and committed together


@dataclass
class Stored:
    signal: Signal
    duplicate: bool



def numeric_fields(session: Session, signal_type: str, known: dict[str, set[str]] | None = None) -> set[str]:
    """The payload fields the current sequences' triggers compare as numbers for ``signal_type``;
    ``known`` caches them by type for the length of an import."""
    if known is not None and signal_type in known:
        return known[signal_type]
    fields = numeric_signal_fields((v.definition.get("trigger") or {} for v in current_versions(session)),
                                   signal_type)
    if known is not None:
        known[signal_type] = fields
    return fields


def store(session: Session, now: datetime, signal: SignalIn, *, numeric: dict[str, set[str]] | None = None,
          types: frozenset[str] = SIGNAL_TYPES) -> Stored:
    """Validate and commit one signal; a repeated dedupe key returns the stored one.

    The dedupe key is derived from the payload as received; the payload is stored with
    the values the triggers compare as numbers made numbers (``numeric`` caches which).
    """
    clean = validate(signal, now, types)
    existing = session.exec(select(Signal).where(Signal.dedupe_key == clean.dedupe_key)).first()
    if existing is not None:
        return Stored(existing, True)
    row = Signal(
        type=clean.type,
        dedupe_key=clean.dedupe_key,
        email=clean.email,
        domain=clean.domain or (clean.email.split("@", 1)[1] if clean.email else ""),
        payload=typed_payload(clean.payload, numeric_fields(session, clean.type, numeric)),
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


@dataclass(frozen=True)
class Accepted:
    """One item of ``store_many`` that is stored: its id, and whether it was there already."""

    id: int
    duplicate: bool


def store_many(
    session: Session,
    now: datetime,
    items: Sequence[SignalIn],
    *,
    numeric: dict[str, set[str]] | None = None,
    types: frozenset[str] = SIGNAL_TYPES,
) -> list[Accepted | ValueError]:
    """Validate and store ``items``; per item, in order, what was stored or why it was refused. Commits.

    Written ``STORE_BATCH`` at a time, each batch one INSERT that skips the dedupe keys
    already stored (``ON CONFLICT DO NOTHING``, so two importers racing on a key store it
    once and both learn its id) and one commit. An item repeating a key earlier in
    ``items`` is a duplicate of that one.
    """
    numeric = {} if numeric is None else numeric
    results: list[Accepted | ValueError] = []
    for start in range(0, len(items), STORE_BATCH):
        results.extend(_store_batch(session, now, items[start:start + STORE_BATCH], numeric, types))
    return results


def _store_batch(
    session: Session, now: datetime, items: Sequence[SignalIn], numeric: dict[str, set[str]], types: frozenset[str]
) -> list[Accepted | ValueError]:
    checked: list[SignalIn | ValueError] = []
    rows: dict[str, dict[str, Any]] = {}  # by dedupe key: the first item with a key is the one stored
    for item in items:
        try:
            clean = validate(item, now, types)
        except ValueError as exc:
            checked.append(exc)
            continue
        checked.append(clean)
        if clean.dedupe_key not in rows:
            rows[clean.dedupe_key] = _row(session, now, clean, numeric)
    ids = _insert_new(session, list(rows.values()))
    new_keys = set(ids)
    missing = [key for key in rows if key not in ids]
    for part in chunks(missing):
        ids.update(session.exec(select(Signal.dedupe_key, Signal.id).where(Signal.dedupe_key.in_(part))).all())
    session.commit()
    results: list[Accepted | ValueError] = []
    for clean in checked:
        if isinstance(clean, ValueError):
            results.append(clean)
            continue
        key = clean.dedupe_key
        results.append(Accepted(ids[key], duplicate=key not in new_keys))
        new_keys.discard(key)  # a later item with the same key is its duplicate
    return results


def _row(session: Session, now: datetime, clean: SignalIn, numeric: dict[str, set[str]]) -> dict[str, Any]:
    return {
        "type": clean.type,
        "dedupe_key": clean.dedupe_key,
        "email": clean.email,
        "domain": clean.domain or (clean.email.split("@", 1)[1] if clean.email else ""),
        "payload": typed_payload(clean.payload, numeric_fields(session, clean.type, numeric)),
        "source": clean.source,
        "occurred_at": clean.occurred_at,
        "received_at": now,
    }


def _insert_new(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """INSERT the rows whose dedupe key is new; their ids by dedupe key.

    One statement, compiled once (``_insert_statement``) and executed for all the rows:
    SQLAlchemy sends them as multi-row VALUES pages ("insertmanyvalues"), which spares
    building a 1,000-row VALUES clause each time. The rows are already deduplicated,
    so the statement never meets itself; ON CONFLICT skips keys stored before.
    """
    if not rows:
        return {}
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql" and len(rows) >= COPY_FROM:
        return _copy_new(session, rows)
    return dict(session.connection().execute(_insert_statement(dialect), rows).all())


COPY_FROM = 50  # rows; fewer go as one INSERT (COPY's scratch table costs three more round trips)


_COLUMNS = ("type", "dedupe_key", "email", "domain", "payload", "source", "occurred_at", "received_at")
# A per-session scratch table, emptied at every commit; ``n`` keeps the rows' order for their ids.
_SCRATCH = ("CREATE TEMP TABLE IF NOT EXISTS signal_intake (n integer, type text, dedupe_key text, email text, "
            "domain text, payload json, source text, occurred_at timestamp, received_at timestamp) "
            "ON COMMIT DELETE ROWS")
_FROM_SCRATCH = (f"INSERT INTO signal ({', '.join(_COLUMNS)}, processed_at) "
                 f"SELECT {', '.join(_COLUMNS)}, NULL FROM signal_intake ORDER BY n "
                 "ON CONFLICT (dedupe_key) DO NOTHING RETURNING dedupe_key, id")


def _copy_new(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """PostgreSQL: COPY the rows into a scratch table, then one INSERT ... SELECT ... ON CONFLICT.

    COPY streams the rows without a parameter per value: the parsing of a 9,000-parameter
    statement was most of a multi-row INSERT's cost. Times go in as naive UTC, as
    ``UTCDateTime`` stores them; the payload as its JSON text.
    """
    cursor = session.connection().connection.driver_connection.cursor()
    cursor.execute(_SCRATCH)
    with cursor.copy(f"COPY signal_intake (n, {', '.join(_COLUMNS)}) FROM STDIN") as copy:
        for n, row in enumerate(rows):
            copy.write_row((n, row["type"], row["dedupe_key"], row["email"], row["domain"],
                            json.dumps(row["payload"], ensure_ascii=False), row["source"],
                            _naive_utc(row["occurred_at"]), _naive_utc(row["received_at"])))
    cursor.execute(_FROM_SCRATCH)
    found = dict(cursor.fetchall())
    cursor.execute("TRUNCATE signal_intake")
    return found


def _naive_utc(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment else None


@lru_cache(maxsize=2)
def _insert_statement(dialect: str) -> Any:
    """Executed with all the rows, sent as multi-row VALUES pages ("insertmanyvalues")."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return (
        insert(Signal).on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(Signal.dedupe_key, Signal.id)
    )
