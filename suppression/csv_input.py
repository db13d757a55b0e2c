"""Reading a CSV file someone else made: the one reader every CSV import uses.

Files handed over come from Excel on Windows, from a CRM export, from a script; they are
trusted for nothing. What this reader does with them:

- encoding: a byte order mark says UTF-8, UTF-16 or UTF-32 and is believed. Without one
  the file is UTF-8 if its first 64 KB are; if they are not and hold no UTF-8 character at
  all, the file is read as Windows-1252 (what Excel writes), with a note saying so. A file
  that is UTF-8 with a few broken lines keeps those lines as bad rows. A file that looks
  like UTF-16 without a byte order mark is refused, since nothing in it can be trusted to
  read right;
- delimiter: ``,``, ``;`` or a tab, found by ``csv.Sniffer`` on the first lines (and ``,``
  when it cannot tell);
- rows: each with the line it starts on (a quoted field may span lines); a row that cannot
  be read (bad quoting, a NUL character, an over-long line, a field over the csv module's
  limit) is a ``BadLine`` for that row alone, and reading goes on;
- values our own exports escaped against formula injection (``escape_formula``) read back
  as they were.

Nothing here knows about suppression or prospects; it lives in ``suppression`` because
that package is the lowest in the layer order, so every importer can use it.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

SAMPLE_BYTES = 64 * 1024  # what the encoding and the delimiter are decided on
MAX_LINE_BYTES = 1024 * 1024  # a longer line is refused (and skipped), never read into memory whole
DELIMITERS = ",;\t"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet runs as a formula (OWASP)

_UTF8_CHARACTER = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
_BOMS = (  # longest first: the UTF-32 LE mark begins with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)


class CsvError(ValueError):
    """The file as a whole cannot be imported (an encoding we will not guess, no header, ...)."""


@dataclass(frozen=True)
class Row:
    line: int  # where the row starts
    fields: list[str]


@dataclass(frozen=True)
class BadLine:
    line: int
    problem: str
    fields: list[str] = field(default_factory=list)  # what could be read of it, for a report


def escape_formula(value: str) -> str:
    """``value`` safe to open in a spreadsheet: a leading ``= + - @``, tab or CR gets a ``'``.

    A value that already starts with ``'`` before one of them gets one more, so that
    ``unescape_formula`` gives back exactly what was escaped.
    """
    return "'" + value if value.lstrip("'").startswith(FORMULA_STARTS) else value


def unescape_formula(value: str) -> str:
    return value[1:] if value.startswith("'") and value.lstrip("'").startswith(FORMULA_STARTS) else value


class CsvInput:
    """Rows of a binary CSV stream (see the module docstring); ``notes`` says what was guessed.

    ``on_progress`` receives the number of bytes read so far.
    """

    def __init__(self, source: BinaryIO, name: str, on_progress: Callable[[int], None] | None = None) -> None:
        self.name = name
        self.notes: list[str] = []
        self._source = source
        self._on_progress = on_progress
        self._sample = source.read(SAMPLE_BYTES)
        self.encoding = self._encoding(self._sample)
        self.delimiter = self._delimiter()
        self._pending: list[BadLine] = []

    def __iter__(self) -> Iterator[Row | BadLine]:
        reader = csv.reader(self._lines(), delimiter=self.delimiter, strict=True)
        previous = 0
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                yield from self._drain()
                return
            except csv.Error as exc:
                yield from self._drain()
                yield BadLine(previous + 1, f"unreadable CSV: {exc}")
                previous = reader.line_num
                continue
            start, previous = previous + 1, reader.line_num
            yield from self._drain()
            if not fields or not any(value.strip() for value in fields):
                continue
            nul = next((i for i, value in enumerate(fields, 1) if "\x00" in value), None)
            if nul is not None:
                yield BadLine(start, f"a NUL character in field {nul}", [v.replace("\x00", "") for v in fields])
                continue
            yield Row(start, [unescape_formula(value) for value in fields])

    def _drain(self) -> Iterator[BadLine]:
        while self._pending:
            yield self._pending.pop(0)

    def _encoding(self, sample: bytes) -> str:
        for bom, codec in _BOMS:
            if sample.startswith(bom):
                return codec
        if sample and sample.count(b"\x00") * 4 > len(sample):
            raise CsvError(f"{self.name}: this looks like UTF-16 or UTF-32 without a byte order mark; "
                           "save it as UTF-8 (or as UTF-16 with a byte order mark) and import it again")
        try:
            sample.decode("utf-8")
            return "utf-8"
        except UnicodeDecodeError as exc:
            if exc.reason == "unexpected end of data" and exc.end == len(sample) and len(sample) == SAMPLE_BYTES:
                return "utf-8"  # a character cut in two by the end of the sample
            if _UTF8_CHARACTER.search(sample):
                return "utf-8"  # UTF-8 with some broken lines: those lines are bad rows
            line = sample.count(b"\n", 0, exc.start) + 1
            self.notes.append(f"{self.name}: not UTF-8 (line {line} is the first that is not); "
                              "read as Windows-1252, as Excel writes it")
            return "cp1252"

    def _delimiter(self) -> str:
        text = self._sample.decode(self.encoding, errors="replace").lstrip("\ufeff")
        lines = text.split("\n")
        if len(self._sample) == SAMPLE_BYTES:
            lines = lines[:-1]  # the last line of a full sample may be cut short
        lines = lines[:20]
        header = next((line for line in lines if line.strip()), "")
        try:
            found = csv.Sniffer().sniff("\n".join(lines), delimiters=DELIMITERS).delimiter
        except csv.Error:
            found = ","
        if found not in header and "," in header:
            found = ","  # the sniffer counts characters; a header without its delimiter is not its file
        return found

    def _lines(self) -> Iterator[str]:
        """Decoded lines for the csv module; a line that cannot be read is reported in
        ``_pending`` and given as an empty line, so later line numbers stay right."""
        if self.encoding in ("utf-16", "utf-32"):
            yield from self._wide_lines()
            return
        codec = "utf-8" if self.encoding == "utf-8-sig" else self.encoding
        what = "UTF-8" if codec == "utf-8" else "Windows-1252"
        consumed = 0
        for number, (raw, size) in enumerate(self._byte_lines(), start=1):
            consumed += size
            if raw is None:
                self._pending.append(BadLine(number, f"line longer than {MAX_LINE_BYTES} bytes"))
                text = "\n"
            else:
                if number == 1 and self.encoding == "utf-8-sig":
                    raw = raw.removeprefix(codecs.BOM_UTF8)
                try:
                    text = raw.decode(codec)
                except UnicodeDecodeError as exc:
                    self._pending.append(BadLine(number, f"not valid {what} ({exc.reason})"))
                    text = "\n"
            if self._on_progress is not None:
                self._on_progress(consumed)
            yield text

    def _byte_lines(self) -> Iterator[tuple[bytes | None, int]]:
        """``(line, bytes read)`` for the sample's lines and then the stream's, split at ``\\n``
        only (a CR may be inside a quoted field); an over-long line is ``None``, its
        bytes skipped as they are read, never held."""
        parts = self._sample.split(b"\n")
        carry = parts.pop()  # after the sample's last newline: the start of a line the stream goes on with
        for part in parts:
            yield part + b"\n", len(part) + 1
        while True:
            line = carry + self._source.readline(MAX_LINE_BYTES + 1 - len(carry))
            carry = b""
            if not line:
                return
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                size = len(line)
                while True:
                    rest = self._source.readline(MAX_LINE_BYTES)
                    size += len(rest)
                    if not rest or rest.endswith(b"\n"):
                        break
                yield None, size
                continue
            yield line, len(line)

    def _wide_lines(self) -> Iterator[str]:
        """Lines of a UTF-16 or UTF-32 file, decoded as it is read."""
        decoder = codecs.getincrementaldecoder(self.encoding)(errors="replace")
        what = self.encoding.upper()
        number, consumed, partial, skipping = 0, 0, "", False
        for chunk in itertools.chain([self._sample], iter(lambda: self._source.read(SAMPLE_BYTES), b"")):
            consumed += len(chunk)
            *lines, partial = (partial + decoder.decode(chunk)).split("\n")
            for line in lines:
                number += 1
                if skipping:  # the end of an over-long line
                    skipping = False
                    self._pending.append(BadLine(number, f"line longer than {MAX_LINE_BYTES} characters"))
                    yield "\n"
                else:
                    yield self._checked_wide(number, line + "\n", what)
            if len(partial) > MAX_LINE_BYTES:
                skipping, partial = True, ""
            if self._on_progress is not None:
                self._on_progress(consumed)
        partial += decoder.decode(b"", final=True)
        if skipping:
            self._pending.append(BadLine(number + 1, f"line longer than {MAX_LINE_BYTES} characters"))
        elif partial:
            yield self._checked_wide(number + 1, partial, what)

    def _checked_wide(self, number: int, line: str, what: str) -> str:
        if number == 1:
            line = line.lstrip("\ufeff")
        if "\ufffd" in line:
            self._pending.append(BadLine(number, f"not valid {what}"))
            return "\n"
        return line

