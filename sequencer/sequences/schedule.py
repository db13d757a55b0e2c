"""When a step may happen: sending windows in the prospect's zone, business days, holidays.

All inputs and outputs are aware UTC datetimes; the prospect's zone and country are
used only to decide which local days and hours count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Window:
    """Local days (0 = Monday) and hours when touches may go out."""

    days: frozenset[int] = frozenset(range(5))
    start: time = time(8, 0)
    end: time = time(17, 0)

    @classmethod
    def parse(cls, raw: dict | None) -> Window:
        """Build from ``{days: "mon-fri" | [mon, ...], start: "08:00", end: "17:00"}``."""
        raw = raw or {}
        days = parse_days(raw.get("days", "mon-fri"))
        start = parse_time(str(raw.get("start", "08:00")))
        end = parse_time(str(raw.get("end", "17:00")))
        if end <= start:
            raise ValueError(f"window end {end:%H:%M} must be after start {start:%H:%M}")
        return cls(days=days, start=start, end=end)

    def to_dict(self) -> dict:
        return {
            "days": [DAY_NAMES[d] for d in sorted(self.days)],
            "start": self.start.strftime("%H:%M"),
            "end": self.end.strftime("%H:%M"),
        }


def parse_days(raw: str | list) -> frozenset[int]:
    items = raw if isinstance(raw, list) else [part.strip() for part in str(raw).split(",")]
    days: set[int] = set()
    for item in items:
        item = str(item).strip().lower()[:3] if "-" not in str(item) else str(item).lower()
        if "-" in item:
            first, last = (part.strip()[:3] for part in item.split("-", 1))
            if first not in DAY_NAMES or last not in DAY_NAMES:
                raise ValueError(f"unknown day range {item!r}")
            a, b = DAY_NAMES.index(first), DAY_NAMES.index(last)
            days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(b + 1)])
        elif item in DAY_NAMES:
            days.add(DAY_NAMES.index(item))
        else:
            raise ValueError(f"unknown day {item!r} (use mon..sun)")
    if not days:
        raise ValueError("a window needs at least one day")
    return frozenset(days)


def parse_time(raw: str) -> time:
    try:
        hours, minutes = raw.split(":")
        return time(int(hours), int(minutes))
    except ValueError as exc:
        raise ValueError(f"bad time {raw!r} (use HH:MM)") from exc


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; unknown names raise ``ValueError``."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


@lru_cache(maxsize=512)
def _holidays(country: str, year: int) -> frozenset[date]:
    if not country:
        return frozenset()
    try:
        return frozenset(holidays.country_holidays(country.upper(), years=year).keys())
    except NotImplementedError:
        return frozenset()


def holiday_name(country: str, day: date) -> str:
    """The public holiday's name on ``day`` in ``country``, or "" when it is a normal day."""
    if not country or day not in _holidays(country, day.year):
        return ""
    return holidays.country_holidays(country.upper(), years=day.year).get(day) or "holiday"


def known_country(country: str) -> bool:
    try:
        holidays.country_holidays(country.upper())
        return True
    except NotImplementedError:
        return False


def is_working_day(day: date, window: Window, country: str) -> bool:
    return day.weekday() in window.days and day not in _holidays(country, day.year)


def next_open(moment: datetime, window: Window, tz: str, country: str) -> datetime:
    """The earliest instant at or after ``moment`` inside the window on a working day.

    Candidates are compared in UTC and checked on the local wall clock, so the repeated
    and the skipped hour of a DST change can neither return a time before ``moment`` nor
    one outside the window.
    """
    local_zone = zone(tz)
    moment = moment.astimezone(UTC)
    first_day = moment.astimezone(local_zone).date()
    for offset in range(400):
        day = first_day + timedelta(days=offset)
        if not is_working_day(day, window, country):
            continue
        opens = datetime.combine(day, window.start, local_zone)
        candidates = [moment] if offset == 0 else []
        candidates += [opens.astimezone(UTC), opens.replace(fold=1).astimezone(UTC)]
        inside = [c for c in candidates if c >= moment and _inside(c, day, window, local_zone)]
        if inside:
            return min(inside)
    raise ValueError("no open sending window in the next 400 days")


def _inside(moment: datetime, day: date, window: Window, local_zone: ZoneInfo) -> bool:
    local = moment.astimezone(local_zone)
    return local.date() == day and window.start <= local.time() < window.end


def add_business_days(
    moment: datetime, count: int, window: Window, tz: str, country: str
) -> datetime:
    """``count`` working days after ``moment`` at the same local time of day."""
    local_zone = zone(tz)
    local = moment.astimezone(local_zone)
    day = local.date()
    remaining = count
    while remaining > 0:
        day += timedelta(days=1)
        if is_working_day(day, window, country):
            remaining -= 1
    return datetime.combine(day, local.timetz().replace(tzinfo=None), local_zone).astimezone(
        UTC
    )


def wait_until(moment: datetime, wait: dict, window: Window, tz: str, country: str) -> datetime:
    """Apply a wait spec (``{hours: N}``, ``{days: N}`` or ``{business_days: N}``).

    Hours are elapsed time; days are calendar days in the prospect's zone, so a
    3-day wait keeps the local time of day across a DST change.
    """
    if "business_days" in wait:
        return add_business_days(moment, int(wait["business_days"]), window, tz, country)
    if "days" in wait:
        local_zone = zone(tz)
        local = moment.astimezone(local_zone).replace(tzinfo=None) + timedelta(days=float(wait["days"]))
        return local.replace(tzinfo=local_zone).astimezone(UTC)
    return moment + timedelta(hours=float(wait.get("hours", 0)))
