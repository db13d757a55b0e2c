"""Which signals enroll whom: trigger filters over prospect, account and signal fields.

The values filtered come from outside (a CSV column, a JSONL line, a webhook), so a filter
never raises on them: a value that is not a number fails a numeric filter with that
reason, and ``matches`` runs on RE2, whose matching time is linear in the text whatever
the pattern (Python's ``re`` backtracks: ``(a+)+$`` on forty a's and a b never ends).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import re2

SIGNAL_TYPES = frozenset(
    {
        "intent_surge",
        "funding_round",
        "job_change",
        "form_fill",
        "reply",
        "website_visit",
        "hiring",
        "tech_install",
        "event_attended",
        "meeting_booked",
        "manual",
    }
)
OPERATORS = ("equals", "in", "matches", "between", "at_least", "at_most", "exists")
NUMERIC_OPERATORS = ("between", "at_least", "at_most")
ACCOUNT_SCOPES = ("all", "first", "none")
MAX_PATTERN = 1000  # characters in a ``matches`` pattern
_RE2_SYNTAX = "RE2 syntax: no backreferences or look-around; \\z for the end of text"


def compile_pattern(pattern: str) -> Any:
    """The RE2 program for ``pattern``; raises ``ValueError`` saying why it cannot be one."""
    if len(pattern) > MAX_PATTERN:
        raise ValueError(f"the pattern is {len(pattern)} characters long (the limit is {MAX_PATTERN})")
    return _compiled(pattern)


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> Any:
    options = re2.Options()
    options.log_errors = False  # the reason is in the exception; RE2 would also print it to stderr
    options.max_mem = 8 << 20  # a pattern whose program needs more is refused, not built
    try:
        return re2.compile(pattern, options=options)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(f"{reason} ({_RE2_SYNTAX})") from None


def validate_filter(field: str, spec: Any) -> list[str]:
    """Problems with one filter (``field: {operator: value}``); empty when it is fine."""
    if not re.fullmatch(r"(prospect|account|signal)\.[A-Za-z_][\w.]*|[A-Za-z_]\w*", field):
        return [f"bad filter field {field!r} (use prospect.X, account.X or signal.X)"]
    if not isinstance(spec, dict) or len(spec) != 1:
        return [f"filter {field!r} needs exactly one operator: {', '.join(OPERATORS)}"]
    (op, value), = spec.items()
    if op not in OPERATORS:
        return [f"unknown filter operator {op!r} on {field!r} (known: {', '.join(OPERATORS)})"]
    if op == "matches":
        try:
            compile_pattern(str(value))
        except ValueError as exc:
            return [f"bad regular expression for {field!r}: {exc}"]
    if op == "between" and not (
        isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)
    ):
        return [f"'between' on {field!r} needs two numbers, e.g. [50, 500]"]
    if op == "between" and value[0] > value[1]:
        return [f"'between' on {field!r} needs the lower bound first, e.g. [50, 500]"]
    if op in ("at_least", "at_most") and not _is_number(value):
        return [f"{op!r} on {field!r} needs a number"]
    if op == "in" and not isinstance(value, list):
        return [f"'in' on {field!r} needs a list"]
    return []


def lookup(context: dict[str, Any], field: str) -> Any:
    """Resolve ``account.employees`` (or a bare prospect field) in a nested dict."""
    parts = field.split(".")
    if parts[0] not in ("prospect", "account", "signal"):
        parts = ["prospect", *parts]
    value: Any = context
    for part in parts:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def failed_filters(filters: dict[str, dict], context: dict[str, Any]) -> list[str]:
    """The filters the context does not satisfy, each as a readable sentence."""
    failed = []
    for field, spec in filters.items():
        (op, expected), = spec.items()
        actual = lookup(context, field)
        passes, why = _passes(op, expected, actual)
        if not passes:
            failed.append(f"{field} {op} {expected!r} (was {actual!r}{f': {why}' if why else ''})")
    return failed


def _passes(op: str, expected: Any, actual: Any) -> tuple[bool, str]:
    """Whether ``actual`` passes, and why not when the value (not the comparison) is the reason."""
    if op == "exists":
        return (actual not in (None, "")) == bool(expected), ""
    if actual in (None, ""):
        return False, ""
    if op == "equals":
        return str(actual).lower() == str(expected).lower(), ""
    if op == "in":
        return str(actual).lower() in {str(item).lower() for item in expected}, ""
    if op == "matches":
        try:
            pattern = compile_pattern(str(expected))
        except ValueError as exc:  # a version stored before patterns were checked as RE2
            return False, f"the pattern cannot be used: {exc}"
        return pattern.search(str(actual)) is not None, ""
    number = as_number(actual)
    if number is None:
        return False, "not a number"
    try:
        if op == "between":
            return float(expected[0]) <= number <= float(expected[1]), ""
        if op == "at_least":
            return number >= float(expected), ""
        return number <= float(expected), ""
    except (TypeError, ValueError, IndexError, OverflowError):  # a bound stored before it was checked
        return False, f"the bound {expected!r} is not a number"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_NUMBER_TEXT = re.compile(r"[+-]?(\d{1,30}(\.\d{0,30})?|\.\d{1,30})([eE][+-]?\d{1,3})?")


def as_number(value: Any) -> int | float | None:
    """``value`` as a number: an int or finite float as it is, text such as ``"80"``,
    ``" 80 "`` or ``"7.5e3"`` converted; anything else (``True``, ``"high"``, ``"nan"``,
    ``"1_000"``, ``[80]``) is ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not _NUMBER_TEXT.fullmatch(text):
        return None
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    number = float(text)
    return number if math.isfinite(number) else None


def numeric_signal_fields(triggers: Iterable[dict[str, Any]], signal_type: str) -> set[str]:
    """The signal payload fields (``score`` for ``signal.score``) that the triggers listening
    for ``signal_type`` compare as numbers."""
    fields = set()
    for trigger in triggers:
        if signal_type not in (trigger.get("signals") or ()):
            continue
        for field, spec in (trigger.get("filters") or {}).items():
            if field.startswith("signal.") and isinstance(spec, dict) and set(spec) & set(NUMERIC_OPERATORS):
                fields.add(field.removeprefix("signal."))
    return fields


def typed_payload(payload: dict[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """``payload`` with each of ``fields`` that holds a number as text holding the number.

    A value that is not a number is left as it came: its filter fails with the reason, and
    a template using it says so. Nested fields (``signal.usage.seats``) are followed.
    """
    typed = payload
    for field in sorted(fields):
        parts = field.split(".")
        parents = [typed]
        for part in parts[:-1]:
            child = parents[-1].get(part)
            if not isinstance(child, dict):
                break
            parents.append(child)
        else:
            value = parents[-1].get(parts[-1])
            number = as_number(value) if isinstance(value, str) else None
            if number is None:
                continue
            rebuilt: Any = number  # copy the dicts on the path, never change the caller's
            for parent, part in zip(reversed(parents), reversed(parts), strict=True):
                rebuilt = {**parent, part: rebuilt}
            typed = rebuilt
    return typed
