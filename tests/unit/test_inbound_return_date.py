"""Return dates in out-of-office texts, resolved against the message date."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from sequencer.inbound.return_date import find_return_date, prefers_day_first

FRIDAY = datetime(2026, 11, 27, 10, 0, tzinfo=timezone(timedelta(hours=1)))


@pytest.mark.parametrize(
    ("text", "day_first", "expected"),
    [
        ("I am back on Monday.", False, date(2026, 11, 30)),
        ("I'm returning 3 December.", True, date(2026, 12, 3)),
        ("I will be back on 12/03/2026", False, date(2026, 12, 3)),
        ("I will be back on 12/03/2027", True, date(2027, 3, 12)),
        ("Ich bin bis zum 5. Januar nicht im Büro.", True, date(2027, 1, 5)),
        ("Ab 3.12. bin ich wieder erreichbar.", True, date(2026, 12, 3)),
        ("Je serai de retour le 4 janvier.", True, date(2027, 1, 4)),
        ("Estoy de vacaciones hasta el 7 de enero.", True, date(2027, 1, 7)),
        ("Ik ben terug op maandag 7 december.", True, date(2026, 12, 7)),
        ("Rientro in ufficio il 9 dicembre.", True, date(2026, 12, 9)),
        ("Estarei de volta em 10 de dezembro.", True, date(2026, 12, 10)),
        ("Jag är tillbaka den 8 december.", True, date(2026, 12, 8)),
        ("Back tomorrow!", False, date(2026, 11, 28)),
        ("Back 2026-12-03.", False, date(2026, 12, 3)),
        ("Out from 1 December until December 5th, 2026.", False, date(2026, 12, 5)),
        ("I am away next week, back after that.", False, date(2026, 11, 30)),
        ("I'm out of the office with no access to email.", True, None),
        ("Guten Morgen, ich bin nicht im Büro.", True, None),
        ("Back on 3 November.", True, date(2027, 11, 3)),
        ("I returned on 2024-01-01.", True, None),
        ("Call me on 555-12-34.", True, None),
    ],
)
def test_find_return_date(text: str, day_first: bool, expected: date | None) -> None:
    found = find_return_date(text, FRIDAY, day_first=day_first)
    assert (found.date if found else None) == expected


def test_without_message_date_only_full_dates_resolve() -> None:
    assert find_return_date("back on Monday", None) is None
    found = find_return_date("back on 2027-01-04", None)
    assert found is not None and found.date == date(2027, 1, 4)


def test_relative_dates_use_the_senders_calendar_day() -> None:
    late_evening = datetime(2026, 11, 26, 23, 30, tzinfo=timezone(timedelta(hours=-8)))
    found = find_return_date("back tomorrow", late_evening)
    assert found is not None and found.date == date(2026, 11, 27)


@pytest.mark.parametrize(
    ("language", "content_language", "domain", "expected"),
    [
        ("en", "en-US", "acme.co.uk", False),
        ("en", "en-GB", "acme.com", True),
        ("de", "", "acme.com", True),
        ("en", "", "acme.co.uk", True),
        ("en", "", "acme.com", False),
        (None, "", "acme.us", False),
    ],
)
def test_day_first_policy(
    language: str | None, content_language: str, domain: str, expected: bool
) -> None:
    assert prefers_day_first(language, content_language, domain) is expected
