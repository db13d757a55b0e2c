"""The pure parts of the reports: the A/B significance test, the CSV and JSON writers, date options."""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, datetime

import pytest

from sequencer.reports import formats
from sequencer.reports.period import ReportError, moment
from sequencer.reports.pipeline import ab_tests, two_proportion_p

pytestmark = pytest.mark.unit


def test_two_proportion_p_matches_the_textbook() -> None:
    # 60/500 vs 40/500: pooled 0.1, z = 0.04 / sqrt(0.1 * 0.9 * 0.004) = 2.108, two-sided p = 0.035
    assert two_proportion_p(60, 500, 40, 500) == pytest.approx(0.0350, abs=5e-4)
    assert two_proportion_p(5, 100, 5, 100) == pytest.approx(1.0)
    assert two_proportion_p(0, 100, 0, 100) is None  # no replies at all: nothing to compare
    assert two_proportion_p(1, 0, 1, 10) is None


def _step(variant: str, touches: int, replies: int) -> dict:
    return {"sequence": "s", "step": 1, "step_id": "intro", "variant": variant, "touches": touches,
            "replies": replies, "reply_rate": replies / touches if touches else None}


def test_a_winner_needs_a_sample_and_significance() -> None:
    assert ab_tests([_step("A", 500, 60), _step("B", 500, 40)])[0]["winner"] == "A"
    assert ab_tests([_step("A", 500, 60), _step("B", 500, 40)])[0]["note"].startswith("A wins: 12.0% vs 8.0%")
    small = ab_tests([_step("A", 20, 10), _step("B", 20, 1)])[0]
    assert (small["winner"], small["note"]) == (None, "no winner yet: fewer than 30 sends for a variant")
    close = ab_tests([_step("A", 100, 11), _step("B", 100, 10)])[0]
    assert close["winner"] is None and "not significant" in close["note"]
    assert ab_tests([_step("A", 100, 11)]) == []  # one variant: no test


def test_csv_escapes_what_a_spreadsheet_would_run() -> None:
    document = {"schema": "deliverability", "version": 1, "period": {"since": "a", "until": "b"}, "note": "",
                "status_codes": [{"status_code": "5.1.1", "count": 1, "example": "=HYPERLINK(\"http://x\")"}]}

    rows = list(csv.reader(io.StringIO(formats.to_csv(document))))

    assert ["status_codes", "5.1.1", "example", "'=HYPERLINK(\"http://x\")"] in rows
    assert ["status_codes", "5.1.1", "count", "1"] in rows


def test_json_refuses_nan_rather_than_writing_it() -> None:
    with pytest.raises(ValueError):
        formats.to_json({"rate": math.nan})


def test_dates_and_times() -> None:
    assert moment("2026-11-30", "--until", end_of_day=True) == datetime(2026, 12, 1, tzinfo=UTC)
    assert moment("2026-11-30T10:00:00-05:00", "--since") == datetime(2026, 11, 30, 15, tzinfo=UTC)
    assert moment("2026-11-30T10:00", "--since") == datetime(2026, 11, 30, 10, tzinfo=UTC)  # naive is UTC
    assert moment("  ", "--since") is None
    with pytest.raises(ReportError, match="--until: '30/11/2026' is not a date"):
        moment("30/11/2026", "--until")
