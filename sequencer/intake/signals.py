"""Signals in: validate, dedupe and store before anything acts on them.

A signal is committed before the caller is told it was accepted; acting on it
(enrolling, waking waiting steps) happens afterwards and is re-done for any stored
signal whose ``processed_at`` is still empty, so a crash in between loses nothing.

What is trusted: nothing in a signal. It comes from a vendor's feed, a form, a file, so
every field is checked for its type, the payload for its size, depth and content (text
both databases can store; finite numbers), and a bad one refuses that signal alone with
the field named; a file import reports it with its line and goes on. Payload values that
the triggers compare as numbers are stored as numbers (a CSV's ``"80"`` becomes ``80``),
so templates can do arithmetic with them.

Many signals at once (a file import, an HTTP batch) are stored by ``store_many``: one
multi-row ``INSERT ... ON CONFLICT (dedupe_key) DO NOTHING ... RETURNING`` per batch of
``STORE_BATCH`` (SQLAlchemy core, no ORM object per signal) and one commit per batch, so
a file streams through in bounded memory and 100,000 lines cost a hundred round trips,
not a hundred thousand commits. Each item succeeds or fails alone: a bad one is its
``ValueError``, the good ones of the same batch are stored.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from sequencer.core.db import chunks
from sequencer.core.models import Signal
from sequencer.sequences.signal_types import unknown_type
from sequencer.sequences.triggers import SIGNAL_TYPES, numeric_signal_fields, typed_payload
from sequencer.sequences.versions import current_versions
from suppression.csv_input import BadLine, CsvError, CsvInput
from suppression.normalize import normalize_domain, normalize_email

_RESERVED = {"type", "email", "domain", "occurred_at", "source", "dedupe_key"}
MAX_SIGNAL_BYTES = 64 * 1024  # one signal: a JSONL line, or a payload as stored JSON
MAX_DEPTH = 8  # objects and lists inside a payload ({"a": {"b": [1]}} is 3)
MAX_TEXT = 1000  # characters in type, email, domain, source, dedupe_key
MAX_KEY = 200  # characters in a payload key
STORE_BATCH = 1000  # signals written by one INSERT and committed together
MAX_REPORTED_ERRORS = 1000  # a file of bad lines reports this many by line, and counts the rest
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


@dataclass
class Stored:
    signal: Signal
    duplicate: bool


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


@dataclass
class ImportReport:
    """What a file import did: counts, and the first ``MAX_REPORTED_ERRORS`` refusals by line."""

    stored: int = 0
    duplicates: int = 0
    refused: int = 0
    errors: list[str] = field(default_factory=list)

    def refuse(self, message: str) -> None:
        self.refused += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(message)


def import_file(
    session: Session,
    now: datetime,
    path: Path,
    progress: Callable[[int], None] | None = None,
    types: frozenset[str] = SIGNAL_TYPES,
    on_stored: Callable[[list[int]], None] | None = None,
) -> ImportReport:
    """Store every good record of a signal file, ``STORE_BATCH`` lines at a time.

    The file is streamed: memory holds one batch, not the file. ``on_stored`` gets the
    ids of each batch's new signals once they are committed (the CLI processes them
    there, so processing keeps up with storing); bad lines are refused by line number.
    """
    report = ImportReport()
    numeric: dict[str, set[str]] = {}  # per signal type, read once for the file
    source = f"import:{path.name}"
    records = read_file(path)
    while batch := list(islice(records, STORE_BATCH)):
        lines, items, refused = [], [], []
        for line, record in batch:
            try:
                if isinstance(record, ValueError):
                    raise record
                items.append(SignalIn.from_mapping(record, source=source))
                lines.append(line)
            except ValueError as exc:
                refused.append((line, exc))
        new: list[int] = []
        for line, result in zip(lines, store_many(session, now, items, numeric=numeric, types=types), strict=True):
            if isinstance(result, ValueError):
                refused.append((line, result))
            elif result.duplicate:
                report.duplicates += 1
            else:
                new.append(result.id)
        for line, exc in sorted(refused, key=lambda pair: pair[0]):
            report.refuse(f"{path}:{line}: {exc}")
        report.stored += len(new)
        if progress:
            progress(len(batch))
        if on_stored and new:
            on_stored(new)
    return report


def read_file(path: Path) -> Iterator[tuple[int, dict[str, Any] | ValueError]]:
    """Yield ``(line, record)`` from a JSONL or CSV file; a bad line yields a ``ValueError``.

    A file that cannot be read at all (a CSV in an encoding that is refused) raises
    ``ValueError`` naming it; an unknown suffix too.
    """
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        with path.open("rb") as handle:
            yield from _json_lines(handle)
    elif suffix == ".csv":
        with path.open("rb") as handle:
            try:
                reader = CsvInput(handle, str(path))
            except CsvError as exc:
                raise ValueError(str(exc)) from None
            rows = iter(reader)
            header = next(rows, None)
            columns = [column.strip() for column in header.fields] if header is not None else []
            if isinstance(header, BadLine) or "type" not in columns:
                yield 1, ValueError("CSV header must include a 'type' column")
                return
            for row in rows:
                if isinstance(row, BadLine):
                    yield row.line, ValueError(row.problem)
                elif len(row.fields) > len(columns):
                    yield row.line, ValueError("more fields than the header has")
                else:
                    yield row.line, dict(zip(columns, row.fields, strict=False))
    else:
        raise ValueError(f"{path}: unknown signal file type {path.suffix!r} (use .jsonl or .csv)")


def _json_lines(handle: Any) -> Iterator[tuple[int, dict[str, Any] | ValueError]]:
    """JSON objects, one a line; a line over ``MAX_SIGNAL_BYTES`` is skipped unread."""
    line_no = 0
    while True:
        raw = handle.readline(MAX_SIGNAL_BYTES + 1)
        if not raw:
            return
        line_no += 1
        if len(raw) > MAX_SIGNAL_BYTES and not raw.endswith(b"\n"):
            size = len(raw)
            while (rest := handle.readline(MAX_SIGNAL_BYTES)) and not rest.endswith(b"\n"):
                size += len(rest)
            size += len(rest.rstrip(b"\r\n"))
            yield line_no, ValueError(f"a line of {size} bytes; a signal may be at most {MAX_SIGNAL_BYTES}")
            continue
        if not raw.strip():
            continue
        yield line_no, _json_record(raw)


def _json_record(raw: bytes) -> dict[str, Any] | ValueError:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return ValueError(f"not valid UTF-8 ({exc.reason} at byte {exc.start + 1})")
    try:
        record = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        return ValueError(f"not valid JSON: {exc.msg} at column {exc.colno}")
    except RecursionError:
        return ValueError(f"nested too deeply (a payload may be {MAX_DEPTH} levels deep)")
    except ValueError as exc:  # NaN or Infinity, or an integer of thousands of digits
        return ValueError(f"not valid JSON: {exc}")
    if not isinstance(record, dict):
        return ValueError("each line must be a JSON object")
    return record


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def unprocessed(session: Session, limit: int = 1000) -> list[Signal]:
    return list(
        session.exec(select(Signal).where(Signal.processed_at.is_(None)).order_by(Signal.id).limit(limit))
    )


def any_unprocessed(session: Session) -> bool:
    """Whether a stored signal waits to be acted on: one probe of the partial index
    ``ix_signal_unprocessed``, cheap enough for the embedded loop to ask ten times a second."""
    found = session.exec(select(Signal.id).where(Signal.processed_at.is_(None)).limit(1)).first() is not None
    session.rollback()  # end the read: SQLite would keep its snapshot, and the next probe see nothing new
    return found
