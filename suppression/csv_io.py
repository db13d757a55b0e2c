"""CSV import and export of the suppression list (``value,kind,reason,expires_at,note``).

Import is built for lists of a million rows handed over by someone else, which always
contain some junk. Each bad row is reported with its line number and why, and the
good rows are stored anyway. Rows are written in batches, one transaction per batch:
a crash (or a kill) mid-import loses at most the batch in flight and never leaves a
half-written row, and because importing is an upsert keyed on ``(kind, value)``,
running the same file again finishes the job without duplicating anything.

The file is read by ``suppression.csv_input`` (encodings, delimiters, rows that cannot be
read), as every CSV import is. Export writes the same columns, so an export re-imports to
the same list; a value a spreadsheet would run as a formula is escaped on the way out.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO, TextIO

from sqlmodel import Session, select

from suppression.csv_input import BadLine, CsvError, CsvInput, Row, escape_formula
from suppression.models import SuppressionEntry
from suppression.store import EntrySpec, iter_entries, make_spec, merge, new_entry

COLUMNS = ("value", "kind", "reason", "expires_at", "note")
__all__ = ["COLUMNS", "BadRow", "CsvError", "ImportReport", "export_csv", "import_csv", "parse_expiry"]


@dataclass(frozen=True)
class BadRow:
    line: int
    value: str
    problem: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.problem}"


@dataclass
class ImportReport:
    """What an import did; ``bad`` lists every refused row in file order."""

    rows: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    bad: list[BadRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the reader guessed (an encoding)


def import_csv(
    session: Session,
    now: datetime,
    source: BinaryIO,
    *,
    name: str = "<csv>",
    default_reason: str = "manual",
    added_by: str = "",
    batch_size: int = 1000,
    on_progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import suppression rows from a binary CSV stream; commit one batch at a time.

    A blank ``kind`` is inferred (``@`` means email, anything else a domain); a blank
    ``reason`` becomes ``default_reason``; ``expires_at`` is ISO 8601, a date meaning
    midnight UTC and a time without offset meaning UTC. Existing entries are updated
    in place, except that an unsubscribe or complaint is never weakened (see
    ``suppression.store``). ``on_progress`` receives the number of bytes read so far.
    Raises ``CsvError`` (naming ``name``) when the header is unusable or the encoding is
    one that will not be guessed.
    """
    report = ImportReport()
    reader = CsvInput(source, name, on_progress)
    report.notes.extend(reader.notes)
    rows = iter(reader)
    columns = _read_header(rows, name)
    value_at = columns.index("value")
    batch: dict[tuple[str, str], EntrySpec] = {}
    for row in rows:
        report.rows += 1
        fields = row.fields
        if isinstance(row, BadLine):
            report.bad.append(BadRow(row.line, fields[value_at] if value_at < len(fields) else "", row.problem))
            continue
        try:
            spec = _row_spec(columns, fields, default_reason)
        except ValueError as exc:
            value = fields[value_at] if value_at < len(fields) else ""
            report.bad.append(BadRow(row.line, value, str(exc)))
            continue
        batch[(spec.kind, spec.value)] = spec
        if len(batch) >= batch_size:
            _write_batch(session, now, batch, added_by, report)
            batch = {}
    if batch:
        _write_batch(session, now, batch, added_by, report)
    report.bad.sort(key=lambda bad: bad.line)
    return report


def export_csv(session: Session, out: TextIO) -> int:
    """Write every entry (expired ones too) as CSV; returns the number of rows written.

    A value starting with ``= + - @``, a tab or a CR gets a leading ``'`` (OWASP's advice
    against CSV formula injection: a note of ``=HYPERLINK(...)`` must not run when the
    export is opened in a spreadsheet); importing the file removes it again. Lines end in
    CRLF (RFC 4180), so the writer also quotes a value holding a lone CR, which it would
    otherwise write bare and the file would not read back.
    """
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    count = 0
    for entry in iter_entries(session):
        expires = entry.expires_at.isoformat() if entry.expires_at else ""
        values = (entry.value, entry.kind, entry.reason, expires, entry.note)
        writer.writerow([escape_formula(value) for value in values])
        count += 1
    return count


def parse_expiry(text: str) -> datetime | None:
    """``None`` for blank; otherwise an aware UTC datetime, or ``ValueError`` naming it."""
    text = text.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expires_at {text!r} is not an ISO 8601 date or time") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _read_header(rows: Iterator[Row | BadLine], name: str) -> list[str]:
    for row in rows:
        if isinstance(row, BadLine):
            raise CsvError(f"{name}: line {row.line}: cannot read the header: {row.problem}")
        columns = [column.strip().lower() for column in row.fields]
        unknown = [column for column in columns if column not in COLUMNS]
        if unknown:
            raise CsvError(
                f"{name}: line {row.line}: unknown column(s) {', '.join(map(repr, unknown))};"
                f" expected a header of {','.join(COLUMNS)}"
            )
        if "value" not in columns or len(set(columns)) != len(columns):
            raise CsvError(
                f"{name}: line {row.line}: the header needs a 'value' column and no"
                f" repeats; expected {','.join(COLUMNS)}"
            )
        return columns
    raise CsvError(f"{name}: empty file; expected a header of {','.join(COLUMNS)}")


def _row_spec(columns: list[str], fields: list[str], default_reason: str) -> EntrySpec:
    if len(fields) > len(columns):
        raise ValueError(f"{len(fields)} fields but the header has {len(columns)}")
    row = dict(zip(columns, fields, strict=False))
    value = row.get("value", "").strip()
    if not value:
        raise ValueError("value is empty")
    return make_spec(
        value,
        kind=row.get("kind", ""),
        reason=row.get("reason", "").strip() or default_reason,
        note=row.get("note", "").strip(),
        expires_at=parse_expiry(row.get("expires_at", "")),
    )


def _write_batch(
    session: Session,
    now: datetime,
    batch: dict[tuple[str, str], EntrySpec],
    added_by: str,
    report: ImportReport,
) -> None:
    """Upsert one batch in one transaction: all of it is stored, or none of it."""
    values = list({value for _, value in batch})
    query = select(SuppressionEntry).where(SuppressionEntry.value.in_(values))
    existing = {(row.kind, row.value): row for row in session.exec(query)}
    added = updated = unchanged = 0
    try:
        for key, spec in batch.items():
            row = existing.get(key)
            if row is None:
                session.add(new_entry(spec, now, added_by))
                added += 1
            elif merge(row, spec) == "updated":
                session.add(row)
                updated += 1
            else:
                unchanged += 1
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.expunge_all()  # a million rows must not pile up in the identity map
    report.added += added
    report.updated += updated
    report.unchanged += unchanged


