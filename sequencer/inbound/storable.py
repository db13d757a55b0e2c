"""Text from inbound mail made storable: every database takes what ``storable`` returns.

A Python ``str`` can hold what no database column will: lone surrogates (the stdlib
parser keeps raw 8-bit header bytes as U+DC80..U+DCFF "surrogate escapes"; codecs such
as raw-unicode-escape produce any code point) cannot be encoded to UTF-8 by either
driver, and PostgreSQL refuses NUL in text and in ``\\u0000`` JSON escapes. Nothing in a
message is trusted to be free of them: whatever the sender wrote passes through here
before it is stored, so one odd message can never make an insert (or the quarantine
that follows a failed one) raise.

The repair keeps as much as can be read: surrogate escapes are turned back into their
bytes and decoded the way the parser decodes a body (UTF-8, else cp1252, else Latin-1),
a well-formed surrogate pair becomes its character, and anything else that cannot be
stored (a lone surrogate, NUL) becomes U+FFFD, the replacement character.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, TypeVar

from sequencer.inbound.parse import decode_bytes

T = TypeVar("T")

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_ESCAPED_BYTES = re.compile("[\udc80-\udcff]+")
_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")


def storable_text(text: str) -> str:
    """``text`` with nothing a database refuses; unchanged when it already was storable."""
    if not _UNSTORABLE.search(text):
        return text
    text = _PAIR.sub(_combine, text)  # first: a pair's low half would look like an escaped byte
    text = _ESCAPED_BYTES.sub(_unescape, text)
    return _UNSTORABLE.sub(REPLACEMENT, text)


def storable(value: T) -> T:
    """``value`` with every string in it storable: text, and the strings (keys too) of
    dicts, lists, tuples and dataclass instances, at any depth. Other values are kept."""
    if isinstance(value, str):
        return storable_text(value)  # type: ignore[return-value]
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}  # type: ignore[return-value]
    if isinstance(value, (list, tuple)):
        return type(value)(storable(item) for item in value)  # type: ignore[return-value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes: dict[str, Any] = {f.name: storable(getattr(value, f.name)) for f in dataclasses.fields(value)
                                   if f.init}
        return dataclasses.replace(value, **changes)
    return value


def _unescape(found: re.Match[str]) -> str:
    raw = bytes(ord(char) - 0xDC00 for char in found.group(0))
    return decode_bytes(raw, None).replace("\x00", REPLACEMENT)


def _combine(found: re.Match[str]) -> str:
    high, low = (ord(char) for char in found.group(0))
    return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
