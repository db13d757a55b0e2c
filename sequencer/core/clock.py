"""Clocks: the engine never calls ``datetime.now()`` itself; it is handed a clock.

All times inside the engine are timezone-aware UTC ``datetime`` objects.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class SimulatedClock:
    """A clock that only moves when told to; used by the demo, tests and benchmarks."""

    def __init__(self, start: datetime) -> None:
        self._now = as_utc(start)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = as_utc(moment)


def as_utc(moment: datetime) -> datetime:
    """Return ``moment`` as aware UTC; a naive value is taken to be UTC already.

    Databases (SQLite in particular) hand back naive datetimes, so every value read
    from a row goes through here before it is compared with a clock's ``now()``.
    """
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
