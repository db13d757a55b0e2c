"""Which signals enroll whom: trigger filters over prospect, account and signal fields."""

from __future__ import annotations

import re
from typing import Any

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
ACCOUNT_SCOPES = ("all", "first", "none")


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
            re.compile(str(value))
        except re.error as exc:
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
        if not _passes(op, expected, actual):
            failed.append(f"{field} {op} {expected!r} (was {actual!r})")
    return failed


def _passes(op: str, expected: Any, actual: Any) -> bool:
    if op == "exists":
        return (actual not in (None, "")) == bool(expected)
    if actual in (None, ""):
        return False
    if op == "equals":
        return str(actual).lower() == str(expected).lower()
    if op == "in":
        return str(actual).lower() in {str(item).lower() for item in expected}
    if op == "matches":
        return re.search(str(expected), str(actual)) is not None
    number = _number(actual)
    if number is None:
        return False
    if op == "between":
        return float(expected[0]) <= number <= float(expected[1])
    if op == "at_least":
        return number >= float(expected)
    return number <= float(expected)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
