"""A prospect's time zone: read as exports write it, or inferred from where they are.

Written forms, tried in this order, all giving an IANA name:

- an IANA name in any case ("America/New_York", "europe/berlin"), also inside a label
  ("(GMT+01:00) Europe/Berlin", "(GMT-05:00) Eastern Standard Time (America/New_York)") and
  in HubSpot's internal form ("america_slash_new_york");
- a Windows zone name ("W. Europe Standard Time", CLDR's table as ``tzlocal`` ships it), also
  as "W. Europe Standard Time - (GMT+01:00) ..." or a Windows display label whose first city
  names a zone ("(UTC+01:00) Amsterdam, Berlin, Bern, ...");
- a US / Canada label or abbreviation ("Eastern Time (US & Canada)", "EST", "PT").

An offset alone ("GMT+01:00") is refused: it does not say when daylight saving moves it,
so the window would be an hour off half the year.

Inference (``infer``): the state or province's zone where a country has several
(``region_zones``), else the country's only zone (tzdata's ``zone.tab``: every zone of the
country with the same offsets all year), else the zone most of its people live in. Where
none fits (the US without a state), nothing is guessed.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from zoneinfo import available_timezones

from tzlocal.windows_tz import win_tz

from sequencer.intake.region_zones import PRINCIPAL_ZONES, REGION_ZONES
from sequencer.sequences import schedule

_NY, _CHI, _DEN, _LA = "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"
LABELS = {
    "eastern time (us & canada)": _NY, "central time (us & canada)": _CHI, "mountain time (us & canada)": _DEN,
    "pacific time (us & canada)": _LA, "alaska": "America/Anchorage", "hawaii": "Pacific/Honolulu",
    "arizona": "America/Phoenix", "atlantic time (canada)": "America/Halifax", "newfoundland": "America/St_Johns",
    "saskatchewan": "America/Regina", "eastern": _NY, "central": _CHI, "mountain": _DEN, "pacific": _LA,
    # abbreviations: the US and UK reading, which is what a B2B export means by them
    "et": _NY, "est": _NY, "edt": _NY, "ct": _CHI, "cst": _CHI, "cdt": _CHI, "mt": _DEN, "mst": _DEN,
    "mdt": _DEN, "pt": _LA, "pst": _LA, "pdt": _LA, "akst": "America/Anchorage", "hst": "Pacific/Honolulu",
    "bst": "Europe/London", "gmt": "UTC", "utc": "UTC", "z": "UTC",
}
_OFFSET = re.compile(r"^\(?(?:gmt|utc)\s*(?:[+\-\u2212]\s*\d{1,2}(?::?\d{2})?)?\)?", re.IGNORECASE)
_IANA_LIKE = re.compile(r"[A-Za-z][A-Za-z_\-]*(?:/[A-Za-z0-9_+\-]+)+")


@lru_cache(maxsize=1)
def _iana() -> dict[str, str]:
    """Every IANA name by its casefolded form, and every zone by its city ("berlin")."""
    names = {name.casefold(): name for name in available_timezones()}
    cities: dict[str, str] = {}
    for name in sorted(available_timezones()):
        if "/" in name and not name.startswith(("Etc/", "SystemV/", "US/", "Canada/", "Brazil/", "Mexico/")):
            cities.setdefault(name.rsplit("/", 1)[1].replace("_", " ").casefold(), name)
    return {**{f"city:{city}": zone for city, zone in cities.items()}, **names}


@lru_cache(maxsize=1)
def _windows() -> dict[str, str]:
    return {name.casefold(): zone for name, zone in win_tz.items()}


@lru_cache(maxsize=4096)
def parse(value: str) -> str:
    """The IANA name ``value`` means; ``ValueError`` saying what is accepted when it means none."""
    written = " ".join(value.split())
    if not written:
        raise ValueError("empty time zone")
    iana, windows = _iana(), _windows()
    folded = written.casefold()
    for candidate in (folded, folded.replace("_slash_", "/")):
        if candidate in iana and not candidate.startswith("city:"):
            return _canonical(iana[candidate])
    for token in _IANA_LIKE.findall(written):
        if token.casefold() in iana:
            return _canonical(iana[token.casefold()])
    name = written.split(" - ", 1)[0].strip().casefold()
    if name in windows:
        return windows[name]
    rest = _OFFSET.sub("", written).strip().casefold()
    if rest in LABELS or folded in LABELS:
        return LABELS.get(rest) or LABELS[folded]
    if rest in windows:
        return windows[rest]
    first_city = rest.split(",", 1)[0].strip()
    if rest != folded and f"city:{first_city}" in iana:  # a Windows display label: "(UTC+01:00) Amsterdam, ..."
        return iana[f"city:{first_city}"]
    if not rest:
        raise ValueError(f"{written!r} is an offset, not a time zone (it does not say when daylight saving "
                         "moves it): write a name like 'Europe/Berlin'")
    raise ValueError(f"unknown time zone {written!r} (write an IANA name like 'America/New_York')")


def _canonical(name: str) -> str:
    """A legacy fixed-offset alias ("EST", "MST") stands for the place people mean by it."""
    return LABELS.get(name.casefold(), name) if "/" not in name else name


@lru_cache(maxsize=1)
def country_zones() -> dict[str, tuple[str, ...]]:
    """Each country's zones, from tzdata's ``zone.tab`` (the same table pytz reads)."""
    text = resources.files("tzdata").joinpath("zoneinfo/zone.tab").read_text(encoding="utf-8")
    zones: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            country, _coordinates, name, *_ = line.split("\t")
            zones.setdefault(country, []).append(name)
    return {country: tuple(names) for country, names in zones.items()}


def _offsets(name: str) -> tuple:
    zone = schedule.zone(name)
    return tuple(datetime(2026, month, 15, tzinfo=UTC).astimezone(zone).utcoffset() for month in (1, 7))


@lru_cache(maxsize=512)
def infer(country: str, region: str = "") -> str | None:
    """The zone of someone in ``country`` (ISO alpha-2) and ``region`` (ISO 3166-2 or as written),
    or None where it cannot be told (see the module docstring)."""
    if region in REGION_ZONES:
        return REGION_ZONES[region]
    zones = country_zones().get(country, ())
    if zones and len({_offsets(name) for name in zones}) == 1:
        return zones[0]
    return PRINCIPAL_ZONES.get(country)
