"""One prospect's values as exports write them, cleaned into what is stored.

Pure: no database. Every value is outside input, so each is bounded in length, and a value
that cannot be read raises ``ValueError`` starting with its field name ("employees: ...")
for the caller to put a line number in front of. What is read, and how:

- country: a name or an ISO code in any case -> ISO alpha-2 (``countries``); region (state,
  province) -> ISO 3166-2 where it names one ("California" -> "US-CA");
- timezone: IANA, labelled, Windows or US forms -> IANA (``timezones.parse``);
- employees: a whole number; a ``,`` or ``.`` before exactly three digits is a thousands
  separator ("1,200" and a German export's "1.200" are both 1200), spaces and ``'`` too;
  "250.0" (a spreadsheet's float) is 250; a range ("51-200", "10,001+") is its lower bound;
- website / domain: the company's domain ("https://www.acme.com/about" -> "acme.com");
- full_name: split into first and last name when those are not given ("Reyes, Dana" too);
- placeholders exports write for nothing ("N/A", "-", "null") are empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sequencer.intake import countries, timezones
from suppression.normalize import normalize_domain

PROSPECT_FIELDS = ("first_name", "last_name", "title", "phone", "linkedin_url", "owner")
ACCOUNT_FIELDS = {"company": "name", "industry": "industry", "employees": "employees"}
# Every field a column may map to (``column_map``), besides custom fields.
FIELDS = ("email", "full_name", *PROSPECT_FIELDS, "company", "domain", "website", "industry", "employees",
          "timezone", "country", "region")

MAX_VALUE = 10_000  # characters in one value (HubSpot's text properties hold 65,536; ours stay smaller)
MAX_CUSTOM_FIELDS = 100
MAX_CUSTOM_KEY = 64
PLACEHOLDERS = frozenset({"n/a", "na", "-", "--", "null", "none", "nil", "#n/a", "(none)", "not available"})

_GROUPED = re.compile(r"\d{1,3}(?:([.,])\d{3})(?:\1\d{3})*")
_FLOAT_WHOLE = re.compile(r"(\d+)[.,]0+")
_RANGE = re.compile(r"(\d[\d,.' ]*)\s*(?:-|\u2013|to)\s*\d[\d,.' ]*|(\d[\d,.' ]*)\s*\+")


@dataclass
class Cleaned:
    """What one row stores: prospect fields, account fields, custom fields and the account's
    domain when the row names one (else it comes from the email address)."""

    prospect: dict[str, str] = field(default_factory=dict)
    account: dict[str, Any] = field(default_factory=dict)
    custom: dict[str, Any] = field(default_factory=dict)
    domain: str = ""
    timezone: str = ""  # as given; empty when the row has none (the caller infers one)


def text(value: Any, name: str) -> str:
    """``value`` as a stripped string, bounded; placeholders are empty."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{name}: expected text, got {type(value).__name__}")
    result = str(value).strip()
    if len(result) > MAX_VALUE:
        raise ValueError(f"{name}: {len(result)} characters, over the limit of {MAX_VALUE}")
    if "\x00" in result:
        raise ValueError(f"{name}: contains a NUL character")
    return "" if result.casefold() in PLACEHOLDERS else result


def whole_number(value: str) -> int:
    """A head count as exports write it (see the module docstring); ``ValueError`` otherwise."""
    compact = re.sub(r"[\s\u00a0\u202f']", "", value)
    ranged = _RANGE.fullmatch(value.strip())
    if ranged:
        compact = re.sub(r"[\s\u00a0\u202f']", "", ranged.group(1) or ranged.group(2))
    if compact.isdigit() and len(compact) <= 12:
        return int(compact)
    if _GROUPED.fullmatch(compact) and len(compact) <= 16:
        return int(re.sub(r"[.,]", "", compact))
    whole = _FLOAT_WHOLE.fullmatch(compact)
    if whole and len(whole.group(1)) <= 12:
        return int(whole.group(1))
    raise ValueError(f"not a whole number: {value!r}")


def domain_from(value: str, name: str) -> str:
    """The domain a website or domain column names, without scheme, ``www.``, port or path."""
    raw = value if "//" in value else f"//{value}"
    try:
        host = urlsplit(raw).hostname or ""
    except ValueError:
        host = ""
    try:
        return normalize_domain(host.removeprefix("www."))
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def split_name(full: str) -> tuple[str, str]:
    """("Dana", "Reyes") from "Dana Reyes" or "Reyes, Dana"; a single word is a first name."""
    if "," in full:
        last, _, first = full.partition(",")
        return first.strip(), last.strip()
    first, _, last = full.partition(" ")
    return first.strip(), last.strip()


def custom_key(header: str) -> str:
    """A column header as a template can name it: "Lead Source" -> "lead_source"."""
    key = re.sub(r"[^0-9a-z]+", "_", header.casefold()).strip("_")[:MAX_CUSTOM_KEY]
    return key if key and not key[0].isdigit() else f"field_{key}"


def clean(values: dict[str, Any], custom: dict[str, Any] | None = None) -> Cleaned:
    """Clean one row's ``values`` (keys from ``FIELDS``; other keys are custom fields, as a
    signal's payload has them) and its ``custom`` fields; ``ValueError`` names the bad field."""
    result = Cleaned()
    raw = {key: text(value, key) for key, value in values.items() if key in FIELDS}
    extra = {key: value for key, value in values.items() if key not in FIELDS}
    for key, value in {**extra, **(custom or {})}.items():
        name = str(key)[:MAX_CUSTOM_KEY]
        if isinstance(value, str):
            value = text(value, name)
        elif value is not None and not isinstance(value, bool | int | float):
            raise ValueError(f"{name}: expected a text or a number, got {type(value).__name__}")
        if value not in (None, ""):
            result.custom[name] = value
    if len(result.custom) > MAX_CUSTOM_FIELDS:
        raise ValueError(f"custom fields: {len(result.custom)}, over the limit of {MAX_CUSTOM_FIELDS}")
    if raw.get("full_name") and not (raw.get("first_name") or raw.get("last_name")):
        raw["first_name"], raw["last_name"] = split_name(raw["full_name"])
    for key in PROSPECT_FIELDS:
        if raw.get(key):
            result.prospect[key] = raw[key]
    for key, column in ACCOUNT_FIELDS.items():
        if raw.get(key):
            result.account[column] = raw[key]
    if "employees" in result.account:
        try:
            result.account["employees"] = whole_number(result.account["employees"])
        except ValueError as exc:
            raise ValueError(f"employees: {exc}") from None
    if raw.get("country"):
        try:
            result.prospect["country"] = countries.country_code(raw["country"])
        except ValueError as exc:
            raise ValueError(f"country: {exc}") from None
    if raw.get("region"):
        result.prospect["region"] = countries.region_code(result.prospect.get("country", ""), raw["region"])
    if raw.get("timezone"):
        try:
            result.timezone = timezones.parse(raw["timezone"])
        except ValueError as exc:
            raise ValueError(f"timezone: {exc}") from None
    for key in ("domain", "website"):
        if raw.get(key) and not result.domain:
            result.domain = domain_from(raw[key], key)
    return result
