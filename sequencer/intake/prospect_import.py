"""``prospects import FILE``: a CRM export, read through a column map, into ``upsert_rows``.

The file is read by ``suppression.csv_input`` (UTF-8 with or without a BOM, UTF-16 with a
BOM, Windows-1252 with a note; ``,``, ``;`` or tab found by ``csv.Sniffer`` on a bounded
sample; each row named by the line it starts on), its header by ``column_map``. A row the
reader cannot read, or with more fields than the header, is an error for that line; the
rest goes on. ``dry_run`` reads and cleans every row the same way and stores nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session

from sequencer.intake import column_map as maps
from sequencer.intake.prospects import ImportReport, ProspectRow, preview, upsert_rows
from suppression.csv_input import BadLine, CsvError, CsvInput

MAX_FILE_BYTES = 200 * 1024 * 1024  # a 100,000-row export of all properties is well under this
PREVIEW_ROWS = 5


@dataclass
class FileImport:
    """What importing (or dry-running) one file did: the mapping, the report, and for a dry
    run the first rows as they would be stored."""

    mapping: maps.Mapping | None
    report: ImportReport
    preview: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    suggestion: tuple[str, int] | None = None  # a preset that would map more columns, and how many


def column_map_for(preset: str = "", map_file: Path | None = None) -> maps.ColumnMap:
    """``--map`` first, then ``--preset``, then the generic map; errors as ``ValueError``/``SourceError``."""
    parts = [maps.load(map_file)] if map_file else []
    if preset:
        parts.append(maps.preset(preset))
    return maps.combine(*parts, maps.preset("generic"))


def import_file(
    session: Session,
    now: datetime,
    path: Path,
    column_map: maps.ColumnMap | None = None,
    custom_fields: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
    batch: int = 500,
) -> FileImport:
    """Import every good row of ``path``; bad rows are errors naming their line and column."""
    result = FileImport(None, ImportReport())
    rows = _rows(path, column_map or column_map_for(), custom_fields, result)
    upsert_rows(session, now, rows, batch=batch, progress=progress, report=result.report)
    return result


def import_csv(session: Session, now: datetime, path: Path, batch: int = 500) -> ImportReport:
    """A file with our own column names (the demo's, a script's), every other column kept as a
    custom field as before."""
    return import_file(session, now, path, custom_fields=[maps.ALL], batch=batch).report


def dry_run(path: Path, column_map: maps.ColumnMap | None = None, custom_fields: Sequence[str] = (),
            rows: int = PREVIEW_ROWS) -> FileImport:
    """Read and clean every row as ``import_file`` would, store nothing; keep the first ``rows``."""
    result = FileImport(None, ImportReport())
    for row in _rows(path, column_map or column_map_for(), custom_fields, result):
        try:
            stored, warning = preview(row.values, row.custom)
        except ValueError as exc:
            result.report.errors.append(row.error(str(exc)))
            continue
        result.report.stored += 1
        if warning:
            result.report.warnings.append(f"{row.where}: {stored['email']}: {warning}")
        if len(result.preview) < rows:
            result.preview.append((row.where, stored))
    if result.mapping is not None:
        result.suggestion = maps.suggest(result.mapping.headers)
    return result


def _rows(path: Path, column_map: maps.ColumnMap, custom_fields: Sequence[str],
          result: FileImport) -> Iterator[ProspectRow]:
    """The file's rows as ``ProspectRow``; what cannot be read goes to ``result.report.errors``."""
    report = result.report
    try:
        size = path.stat().st_size
    except OSError as exc:
        report.errors.append(f"{path}: cannot read: {exc}")
        return
    if size > MAX_FILE_BYTES:
        report.errors.append(f"{path}: {size} bytes, over the limit of {MAX_FILE_BYTES}; split the file")
        return
    with path.open("rb") as handle:
        try:
            reader = CsvInput(handle, str(path))
        except CsvError as exc:
            report.errors.append(str(exc))
            return
        report.notes.extend(reader.notes)
        lines = iter(reader)
        header = next(lines, None)
        if header is None:
            report.errors.append(f"{path}:1: the file is empty")
            return
        if isinstance(header, BadLine):
            report.errors.append(f"{path}:{header.line}: cannot read the header: {header.problem}")
            return
        if len(header.fields) > maps.MAX_COLUMNS:
            report.errors.append(f"{path}:1: {len(header.fields)} columns, over the limit of {maps.MAX_COLUMNS}")
            return
        mapping = maps.resolve(column_map, [h.strip() for h in header.fields], custom_fields)
        result.mapping = mapping
        report.notes.extend(mapping.problems)
        if "email" not in mapping.fields:
            report.errors.append(f"{path}:1: no email column (the map reads it from: "
                                 f"{', '.join(column_map.columns.get('email', ()))}); use --map or --preset")
            return
        for line in lines:
            if isinstance(line, BadLine):
                report.errors.append(f"{path}:{line.line}: {line.problem}")
            elif len(line.fields) > len(mapping.headers):
                report.errors.append(f"{path}:{line.line}: more fields than the header has")
            else:
                values, custom, columns = mapping.values(line.fields)
                yield ProspectRow(f"{path}:{line.line}", values, custom, columns)
