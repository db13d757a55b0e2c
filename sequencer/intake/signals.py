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

This module is the front door (files, the unprocessed queue) and names the rest: a signal
and its checks are in ``signal_values``, storing one or many in ``signal_store``. A file
streams through ``STORE_BATCH`` lines at a time, in bounded memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from sequencer.core.models import Signal
from sequencer.intake.signal_store import STORE_BATCH, Accepted, Stored, numeric_fields, store, store_many
from sequencer.intake.signal_values import (
    MAX_DEPTH,
    MAX_KEY,
    MAX_SIGNAL_BYTES,
    MAX_TEXT,
    SignalIn,
    check_payload,
    parse_time,
    validate,
)
from sequencer.sequences.triggers import SIGNAL_TYPES
from suppression.csv_input import BadLine, CsvError, CsvInput

__all__ = [  # the intake of signals, for callers that know it as one module (UTC and datetime: tests do)
    "MAX_DEPTH", "MAX_KEY", "MAX_SIGNAL_BYTES", "MAX_TEXT", "STORE_BATCH", "UTC", "Accepted", "ImportReport",
    "SignalIn", "Stored", "any_unprocessed", "check_payload", "datetime", "import_file", "numeric_fields",
    "parse_time", "read_file", "store", "store_many", "unprocessed", "validate",
]

MAX_REPORTED_ERRORS = 1000  # a file of bad lines reports this many by line, and counts the rest


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


def unprocessed(session: Session, limit: int = 1000, skip_locked: bool = False) -> list[Signal]:
    """The oldest ``limit`` signals not processed yet.

    ``skip_locked`` passes over the rows another transaction has claimed but not committed
    (PostgreSQL; SQLite renders nothing), so a second worker picks the next batch instead of
    the one in flight: without it both see the same oldest rows and one of them idles.
    """
    query = select(Signal).where(Signal.processed_at.is_(None)).order_by(Signal.id).limit(limit)
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    return list(session.exec(query))


def any_unprocessed(session: Session) -> bool:
    """Whether a stored signal waits to be acted on: one probe of the partial index
    ``ix_signal_unprocessed``, cheap enough for the embedded loop to ask ten times a second."""
    found = session.exec(select(Signal.id).where(Signal.processed_at.is_(None)).limit(1)).first() is not None
    session.rollback()  # end the read: SQLite would keep its snapshot, and the next probe see nothing new
    return found
