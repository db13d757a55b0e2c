"""Sending windows, business days and holidays in the prospect's own zone."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sequencer.sequences.schedule import (
    Window,
    add_business_days,
    holiday_name,
    is_working_day,
    next_open,
    wait_until,
)

WEEKDAYS = Window()  # mon-fri 08:00-17:00


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def at(zone: str, *args: int) -> datetime:
    """A wall-clock time in ``zone``, as UTC."""
    return datetime(*args, tzinfo=ZoneInfo(zone)).astimezone(UTC)


# --- Window.parse ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("fri-mon", {4, 5, 6, 0}),
        ("sat-sun", {5, 6}),
        ("Monday-Wednesday", {0, 1, 2}),
        ("mon, wed, fri", {0, 2, 4}),
        (["tue", "Thu"], {1, 3}),
        (["mon-tue", "sat"], {0, 1, 5}),
        ("sun", {6}),
    ],
)
def test_parse_days(days: str | list, expected: set[int]) -> None:
    assert Window.parse({"days": days}).days == frozenset(expected)


def test_parse_defaults_to_weekday_office_hours() -> None:
    assert Window.parse(None) == Window(frozenset(range(5)), time(8, 0), time(17, 0))
    assert Window.parse({}).to_dict() == {"days": ["mon", "tue", "wed", "thu", "fri"],
                                          "start": "08:00", "end": "17:00"}


def test_parse_times_and_round_trip() -> None:
    window = Window.parse({"days": "fri-mon", "start": "07:30", "end": "20:15"})

    assert (window.start, window.end) == (time(7, 30), time(20, 15))
    assert Window.parse(window.to_dict()) == window
    assert window.to_dict()["days"] == ["mon", "fri", "sat", "sun"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"days": "funday"}, "unknown day 'fun"),
        ({"days": "mon-xyz"}, "unknown day range 'mon-xyz'"),
        ({"days": []}, "a window needs at least one day"),
        ({"start": "8am"}, "bad time '8am' (use HH:MM)"),
        ({"end": "24:00"}, "bad time '24:00'"),
        ({"start": "08:00:00"}, "bad time '08:00:00'"),
        ({"start": "17:00", "end": "09:00"}, "window end 09:00 must be after start 17:00"),
        ({"start": "09:00", "end": "09:00"}, "window end 09:00 must be after start 09:00"),
    ],
)
def test_parse_refuses_bad_windows(raw: dict, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        Window.parse(raw)

    assert message in str(raised.value)


# --- next_open ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "zone", "expected"),
    [
        # Monday 10:00 in New York: already open.
        (utc(2026, 11, 30, 15, 0), "America/New_York", utc(2026, 11, 30, 15, 0)),
        # Monday 07:00 in New York: opens at 08:00 the same day.
        (utc(2026, 11, 30, 12, 0), "America/New_York", utc(2026, 11, 30, 13, 0)),
        # Monday 18:00 in New York: Tuesday 08:00.
        (utc(2026, 11, 30, 23, 0), "America/New_York", utc(2026, 12, 1, 13, 0)),
        # Monday 16:00 in Berlin: open.
        (utc(2026, 11, 30, 15, 0), "Europe/Berlin", utc(2026, 11, 30, 15, 0)),
        # Monday 17:00 sharp in Berlin: closed (the end is exclusive), Tuesday 08:00 CET.
        (utc(2026, 11, 30, 16, 0), "Europe/Berlin", utc(2026, 12, 1, 7, 0)),
        # Tuesday 00:00 in Tokyo: 08:00 the same local day, still Monday in UTC.
        (utc(2026, 11, 30, 15, 0), "Asia/Tokyo", utc(2026, 11, 30, 23, 0)),
        # Friday 18:00 in Kolkata (+05:30): Monday 08:00.
        (utc(2026, 12, 4, 12, 30), "Asia/Kolkata", utc(2026, 12, 7, 2, 30)),
        # Saturday in New York: Monday 08:00.
        (utc(2026, 12, 5, 15, 0), "America/New_York", utc(2026, 12, 7, 13, 0)),
    ],
)
def test_next_open_in_several_zones(moment: datetime, zone: str, expected: datetime) -> None:
    assert next_open(moment, WEEKDAYS, zone, "") == expected


def test_next_open_returns_utc() -> None:
    result = next_open(at("Europe/Berlin", 2026, 11, 30, 10, 0), WEEKDAYS, "Europe/Berlin", "DE")

    assert result.tzinfo == UTC
    assert result == utc(2026, 11, 30, 9, 0)


@pytest.mark.parametrize(
    ("moment", "zone", "expected"),
    [
        # New York springs forward on Sunday 2026-03-08: Friday 17:00 EST -> Monday 08:00 EDT.
        (at("America/New_York", 2026, 3, 6, 17, 0), "America/New_York", utc(2026, 3, 9, 12, 0)),
        # New York falls back on Sunday 2026-11-01: Friday 17:00 EDT -> Monday 08:00 EST.
        (at("America/New_York", 2026, 10, 30, 17, 0), "America/New_York", utc(2026, 11, 2, 13, 0)),
        # Berlin springs forward on 2026-03-29 and falls back on 2026-10-25.
        (at("Europe/Berlin", 2026, 3, 27, 18, 0), "Europe/Berlin", utc(2026, 3, 30, 6, 0)),
        (at("Europe/Berlin", 2026, 10, 23, 18, 0), "Europe/Berlin", utc(2026, 10, 26, 7, 0)),
    ],
)
def test_next_open_across_dst_changes(moment: datetime, zone: str, expected: datetime) -> None:
    result = next_open(moment, WEEKDAYS, zone, "")

    assert result == expected
    assert result.astimezone(ZoneInfo(zone)).time() == time(8, 0)


def test_next_open_on_the_dst_days_themselves() -> None:
    every_day = Window.parse({"days": "mon-sun", "start": "08:00", "end": "17:00"})

    # Before the clocks change, the 08:00 opening is already in the new offset.
    assert next_open(utc(2026, 3, 8, 6, 0), every_day, "America/New_York", "") == utc(2026, 3, 8, 12, 0)
    assert next_open(utc(2026, 11, 1, 4, 0), every_day, "America/New_York", "") == utc(2026, 11, 1, 13, 0)


def test_next_open_in_the_repeated_hour_is_never_before_the_input() -> None:
    """On 2026-11-01 New York lives 01:00-02:00 twice; 06:10 UTC is the second 01:10."""
    night = Window.parse({"days": "mon-sun", "start": "01:30", "end": "03:00"})
    moment = utc(2026, 11, 1, 6, 10)  # 01:10 EST, after 01:30 EDT (05:30 UTC) has passed

    result = next_open(moment, night, "America/New_York", "")

    assert result >= moment
    assert result == utc(2026, 11, 1, 6, 30)  # 01:30 EST, the second 01:30


def test_next_open_skips_a_window_that_falls_into_the_skipped_hour() -> None:
    """On 2026-03-08 New York has no 02:00-03:00; a 02:10-02:50 window cannot open that day."""
    gap = Window.parse({"days": "mon-sun", "start": "02:10", "end": "02:50"})

    result = next_open(utc(2026, 3, 8, 5, 0), gap, "America/New_York", "")

    assert result == utc(2026, 3, 9, 6, 10)  # Monday 02:10 EDT


def test_next_open_skips_us_thanksgiving() -> None:
    wednesday_evening = at("America/New_York", 2026, 11, 25, 18, 0)

    result = next_open(wednesday_evening, WEEKDAYS, "America/New_York", "US")

    assert result == at("America/New_York", 2026, 11, 27, 8, 0)
    assert next_open(wednesday_evening, WEEKDAYS, "America/New_York", "") == at("America/New_York", 2026, 11, 26, 8, 0)
    assert holiday_name("US", result.date() - timedelta(days=1)) == "Thanksgiving Day"


def test_next_open_skips_german_christmas_days() -> None:
    mon_sat = Window.parse({"days": "mon-sat"})
    christmas_eve_evening = at("Europe/Berlin", 2026, 12, 24, 18, 0)

    result = next_open(christmas_eve_evening, mon_sat, "Europe/Berlin", "de")

    assert result == at("Europe/Berlin", 2026, 12, 28, 8, 0)
    assert holiday_name("DE", datetime(2026, 12, 25).date())
    assert holiday_name("DE", datetime(2026, 12, 26).date())
    assert holiday_name("DE", datetime(2026, 12, 24).date()) == ""


def test_unknown_country_has_no_holidays_and_unknown_zone_is_refused() -> None:
    assert is_working_day(datetime(2026, 11, 26).date(), WEEKDAYS, "ZZ")
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        next_open(utc(2026, 11, 30, 15, 0), WEEKDAYS, "Mars/Olympus", "")


# --- business days and waits ----------------------------------------------------------


def test_add_business_days_keeps_local_time_of_day() -> None:
    monday_10 = at("America/New_York", 2026, 11, 30, 10, 15)

    assert add_business_days(monday_10, 1, WEEKDAYS, "America/New_York", "US") == at(
        "America/New_York", 2026, 12, 1, 10, 15)
    assert add_business_days(monday_10, 5, WEEKDAYS, "America/New_York", "US") == at(
        "America/New_York", 2026, 12, 7, 10, 15)


def test_add_business_days_skips_weekends_and_holidays() -> None:
    wednesday = at("America/New_York", 2026, 11, 25, 9, 30)

    assert add_business_days(wednesday, 1, WEEKDAYS, "America/New_York", "US") == at(
        "America/New_York", 2026, 11, 27, 9, 30)
    assert add_business_days(wednesday, 2, WEEKDAYS, "America/New_York", "US") == at(
        "America/New_York", 2026, 11, 30, 9, 30)
    thursday = at("Europe/Berlin", 2026, 12, 24, 11, 0)
    assert add_business_days(thursday, 1, WEEKDAYS, "Europe/Berlin", "DE") == at(
        "Europe/Berlin", 2026, 12, 28, 11, 0)


def test_add_business_days_keeps_local_time_across_dst() -> None:
    friday = at("America/New_York", 2026, 10, 30, 10, 0)  # EDT, 14:00 UTC

    result = add_business_days(friday, 1, WEEKDAYS, "America/New_York", "US")

    assert result == utc(2026, 11, 2, 15, 0)  # Monday 10:00 EST


def test_wait_until_hours_and_days_are_elapsed_time() -> None:
    start = utc(2026, 11, 30, 15, 0)

    assert wait_until(start, {"hours": 36}, WEEKDAYS, "America/New_York", "US") == utc(2026, 12, 2, 3, 0)
    assert wait_until(start, {"hours": 1.5}, WEEKDAYS, "UTC", "") == utc(2026, 11, 30, 16, 30)
    assert wait_until(start, {"days": 2}, WEEKDAYS, "America/New_York", "US") == utc(2026, 12, 2, 15, 0)


def test_wait_until_business_days_uses_the_prospects_calendar() -> None:
    wednesday = at("America/New_York", 2026, 11, 25, 10, 0)

    us = wait_until(wednesday, {"business_days": 1}, WEEKDAYS, "America/New_York", "US")
    de = wait_until(wednesday, {"business_days": 1}, WEEKDAYS, "America/New_York", "DE")

    assert us == at("America/New_York", 2026, 11, 27, 10, 0)
    assert de == at("America/New_York", 2026, 11, 26, 10, 0)


# --- property: next_open lands inside the window, never before the input --------------

ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe",
         "America/St_Johns", "Pacific/Chatham"]
COUNTRIES = ["", "US", "DE", "GB", "AU"]
DST_CHANGES = [datetime(2026, 3, 8, 7), datetime(2026, 11, 1, 6), datetime(2026, 3, 29, 1),
               datetime(2026, 10, 25, 1), datetime(2026, 4, 5), datetime(2026, 10, 4)]
moments = st.one_of(
    st.datetimes(min_value=datetime(2025, 12, 20), max_value=datetime(2027, 1, 10)),
    st.builds(lambda change, minutes: change + timedelta(minutes=minutes),
              st.sampled_from(DST_CHANGES), st.integers(-36 * 60, 36 * 60)),
).map(lambda naive: naive.replace(tzinfo=UTC))


@st.composite
def windows(draw: st.DrawFn) -> Window:
    days = draw(st.sets(st.integers(0, 6), min_size=1))
    start = draw(st.integers(0, 23 * 60 + 58))
    end = draw(st.integers(start + 1, 23 * 60 + 59))
    return Window(frozenset(days), time(*divmod(start, 60)), time(*divmod(end, 60)))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    moment=moments,
    window=windows(),
    zone=st.sampled_from(ZONES),
    country=st.sampled_from(COUNTRIES),
)
def test_next_open_is_inside_the_window_on_a_working_day(
    moment: datetime, window: Window, zone: str, country: str
) -> None:
    result = next_open(moment, window, zone, country)

    local = result.astimezone(ZoneInfo(zone))
    assert result >= moment
    assert is_working_day(local.date(), window, country)
    assert window.start <= local.time() < window.end
    assert next_open(result, window, zone, country) == result
