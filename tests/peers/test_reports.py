"""The deliverability and pipeline reports over a hand-built set, on SQLite and PostgreSQL: each
figure checked against what was put in, in every format, and every kind of bad input answered."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

import pytest
import report_support
from report_support import JO, SAM
from sqlmodel import Session
from typer.testing import CliRunner

from channels.tasks import Task
from sequencer.app.cli import app
from sequencer.core.clock import SimulatedClock
from sequencer.core.config import ConfigError, Settings
from sequencer.reports import deliverability, formats, page, pipeline
from sequencer.reports.period import ReportError, scope

pytestmark = pytest.mark.peers


@pytest.fixture
def config(db_url: str) -> Settings:
    return Settings(database_url=db_url, secret_key="test-secret-0123456789abcdefghij")


@pytest.fixture
def world(session: Session, clock: SimulatedClock):
    return report_support.world(session, clock.now())


def test_deliverability_figures_per_mailbox_and_domain(session, clock, config, world) -> None:
    document = deliverability.build(session, clock.now(), config, scope(session, clock.now()))

    sam, jo = {row["address"]: row for row in document["mailboxes"]}[SAM], document["mailboxes"][0]
    assert jo["address"] == JO and (jo["sent"], jo["bounces"], jo["bounce_rate"]) == (50, 0, 0.0)
    assert (sam["sent"], sam["refused"], sam["attempted"], sam["delivered"]) == (199, 1, 200, 196)
    assert (sam["bounces"], sam["bounce_rate"], sam["bounces_by_type"]) == (4, 0.02, {"hard": 2, "soft": 1,
                                                                                      "block": 1})
    assert (sam["complaints"], sam["complaint_rate"], sam["replies"]) == (1, 0.005, 10)
    assert sam["reply_rate"] == round(10 / 199, 6)
    assert (sam["status"], sam["status_reason"]) == ("warning", "complaint rate 0.50% (1 of 200 sends) reached the "
                                                     "pause threshold 0.30%: protection pauses it at its next run")
    domain = document["domains"][0]
    assert (domain["domain"], domain["attempted"], domain["bounces"], domain["complaints"]) == (
        "outreach-acme.example", 250, 4, 1)
    assert domain["checks"]["status"] == "fail"
    assert domain["checks"]["changes"] == [{"name": "dkim", "before": "pass", "after": "fail",
                                            "reason": "no key at s1._domainkey"}]
    assert [(r["source_ip"], r["messages"], r["dmarc_pass"]) for r in domain["dmarc"]] == [
        ("192.0.2.25", 120, 120), ("203.0.113.9", 7, 0)]
    assert document["bounce_reasons"][0] == {"type": "hard", "reason": "user_unknown", "count": 2, "rate": 0.008}
    assert document["status_codes"][0]["status_code"] == "5.1.1" and document["status_codes"][0]["count"] == 2
    assert document["status_codes"][0]["example"].startswith("550 5.1.1")
    assert document["unsubscribes"] == {"suppressed": 1, "mailed_requests_suppressed": 1,
                                        "mean_seconds_to_suppression": 42.0, "max_seconds_to_suppression": 42.0}
    day1 = next(row for row in document["daily"] if row["mailbox"] == SAM)
    assert (day1["sent"], day1["cap"], day1["bounces"], day1["complaints"], day1["cap_used"]) == (
        100, 150, 3, 1, round(100 / 150, 6))
    assert document["empty"] is False and document["note"] == ""


def test_pipeline_figures(session, clock, config, world) -> None:
    document = pipeline.build(session, clock.now(), config, scope(session, clock.now()))

    leads = {row["signal_type"]: row for row in document["speed_to_lead"]}
    assert (leads["intent_surge"]["leads"], leads["intent_surge"]["p50_seconds"],
            leads["intent_surge"]["within_5_minutes_share"]) == (150, 120.0, 1.0)  # Sam's 2 min, Jo's 3
    assert (leads["funding_round"]["p90_seconds"], leads["funding_round"]["within_5_minutes"]) == (1800.0, 0)
    intro = {(r["variant"], r["touches"], r["replies"]) for r in document["steps"]}
    assert intro == {("A", 150, 8), ("B", 99, 2)}  # B's refused send never counted as sent
    test = document["ab_tests"][0]
    assert (test["leader"], test["winner"]) == ("A", None)
    assert test["note"].startswith("no winner yet: the difference is not significant (p = ")
    everyone = document["meetings"]["groups"]["all"][0]
    assert (everyone["scheduled"], everyone["held"], everyone["show_rate"], everyone["accepted"]) == (2, 1, 0.5, 1)
    assert everyone["no_shows_by_fault"] == {"prospect": 1}
    assert document["cost"] is None


def test_speed_to_lead_counts_a_task_when_it_was_done_never_while_it_waited(session, clock, config) -> None:
    """A call step is 'sent' to the queue at once; the person was touched when the SDR called."""
    now = clock.now()
    box = report_support.mailbox(session, "sam@outreach-acme.example")
    version = report_support.sequence(session, "calls")
    called, waiting = report_support.sent(session, box, now - timedelta(hours=5), 2, version=version,
                                          signal_type="webinar", lead_minutes=1)
    for touch in (called, waiting):
        touch.channel, touch.state = "call", "queued"
        session.add(Task(touch_id=touch.id, enrollment_id=touch.enrollment_id, prospect_id=touch.prospect_id,
                         kind="call", owner=SAM, due_at=touch.sent_at,
                         state="done" if touch is called else "open",
                         completed_at=touch.sent_at + timedelta(hours=2) if touch is called else None))
    session.commit()

    document = pipeline.build(session, now, config, scope(session, now))

    leads = {row["signal_type"]: row for row in document["speed_to_lead"]}["webinar"]
    assert (leads["leads"], leads["p50_seconds"], leads["within_5_minutes"]) == (1, 7260.0, 0)  # 1 min + 2 h
    assert pipeline.first_touch_at(session, waiting.enrollment_id) is None


def test_cost_per_accepted_meeting(session, clock, config, world) -> None:
    config.costs = {"per_month": 3000, "sdr": {"sam.sdr@acme.example": 6000}, "currency": "EUR"}
    period = scope(session, clock.now(), since="2026-11-01", until="2026-11-30")  # 30 days

    cost = pipeline.build(session, clock.now(), config, period)["cost"]

    months = 30 / (365.25 / 12)
    assert (cost["currency"], cost["total"]) == ("EUR", round(9000 * months, 2))
    assert cost["per_accepted_meeting"] == round(9000 * months, 2)
    assert cost["by_sdr"] == [{"sdr": "sam.sdr@acme.example", "cost": round(6000 * months, 2),
                               "per_accepted_meeting": round(6000 * months, 2), "per_sql": round(6000 * months, 2)}]
    config.costs = {"per_month": -1}
    with pytest.raises(ConfigError, match=r"\[costs\]: per_month must be an amount >= 0"):
        pipeline.build(session, clock.now(), config, period)


def test_every_format_is_finite_and_readable(session, clock, config, world) -> None:
    for builder in (deliverability.build, pipeline.build):
        document = builder(session, clock.now(), config, scope(session, clock.now()))
        text = formats.to_json(document)
        assert "NaN" not in text and "Infinity" not in text
        assert json.loads(text)["version"] == 1
        rows = list(csv.reader(io.StringIO(formats.to_csv(document))))
        assert rows[0] == ["section", "key", "metric", "value"] and len(rows) > 10
        assert all(len(row) == 4 for row in rows)
        html = page.render(document)
        assert html.count("<canvas") == 3 and "Chart.js v4" in html and "http://" not in html.split("<script")[0]


@pytest.mark.parametrize("filters", [{}, {"mailbox": JO}, {"domain": "outreach-acme.example"}])
def test_an_empty_period_says_it_is_empty(session, clock, config, world, filters) -> None:
    period = scope(session, clock.now(), since="2020-01-01", until="2020-01-31", **filters)
    for builder in (deliverability.build, pipeline.build):
        document = builder(session, clock.now(), config, period)
        assert document["empty"] is True
        assert document["note"].startswith("the report is empty: ")
        text = formats.to_json(document) + formats.to_csv(document) + page.render(document).replace(page.chart_js(), "")
        assert "NaN" not in text and "Infinity" not in text  # (Chart.js itself names them: left out)
        formats.print_tables(document, __import__("rich.console").console.Console(file=io.StringIO()))


def test_a_mailbox_with_no_sends_has_no_rates(session, clock, config, world) -> None:
    report_support.mailbox(session, "new@outreach-acme.example")
    document = deliverability.build(session, clock.now(), config,
                                    scope(session, clock.now(), mailbox="new@outreach-acme.example"))

    row = document["mailboxes"][0]
    assert (row["sent"], row["bounce_rate"], row["complaint_rate"], row["reply_rate"]) == (0, None, None, None)
    assert document["note"] == ("the report is empty: mailbox new@outreach-acme.example sent no email between "
                                "2026-10-31 15:00 and 2026-11-30 15:00 UTC")
    assert "-" in io.StringIO(formats.to_csv(document)).getvalue()


def test_no_mailbox_at_all(session, clock, config) -> None:
    document = deliverability.build(session, clock.now(), config, scope(session, clock.now()))
    assert document["empty"] and "no mailbox is configured" in document["note"]


@pytest.mark.parametrize(("options", "message"), [
    ({"since": "2026-11-30", "until": "2026-11-01"}, "--since (2026-11-30T00:00:00+00:00) must be before --until"),
    ({"since": "yesterday"}, "--since: 'yesterday' is not a date"),
    ({"mailbox": "nobody@outreach-acme.example"}, "--mailbox: unknown mailbox 'nobody@outreach-acme.example'"),
    ({"domain": "nowhere.example"}, "--domain: no mailbox sends from 'nowhere.example'"),
    ({"mailbox": SAM, "domain": "outreach-acme.example"}, "--mailbox and --domain: give one or the other"),
    ({"since": "1900-01-01"}, "days is more than 3660"),
])
def test_bad_options_are_named(session, clock, world, options, message) -> None:
    with pytest.raises(ReportError, match=re.escape(message)):
        scope(session, clock.now(), **options)


def test_the_cli_writes_each_format(tmp_path, monkeypatch, config, world, session) -> None:
    monkeypatch.setenv("SEQUENCER_DATABASE_URL", config.database_url)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    since = ["--since", "2026-11-01", "--until", "2026-11-30"]
    shown = runner.invoke(app, ["report", "deliverability", *since])
    assert shown.exit_code == 0, shown.output
    assert SAM in shown.output and "5.1.1" in shown.output
    as_json = runner.invoke(app, ["report", "pipeline", *since, "--format", "json"])
    assert json.loads(as_json.output)["schema"] == "pipeline"
    written = runner.invoke(app, ["report", "deliverability", *since, "--format", "html", "--output", "r.html"])
    assert written.exit_code == 0 and (tmp_path / "r.html").read_text().startswith("<!doctype html>")
    bad = runner.invoke(app, ["report", "deliverability", "--format", "pdf"])
    assert bad.exit_code == 1 and "--format: 'pdf' is not one of table, json, csv, html" in bad.output
    backwards = runner.invoke(app, ["report", "pipeline", "--since", "2026-12-01", "--until", "2026-11-01"])
    assert backwards.exit_code == 1 and "must be before --until" in backwards.output
