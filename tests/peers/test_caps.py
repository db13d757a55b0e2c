"""Volume caps: the pure rules, the atomic counters, and the engine deferring capped touches.

The unit tests run on SQLite and PostgreSQL (the ``session`` fixture); the engine tests
send through a real SMTP server on loopback and check that a capped touch is deferred to
the next window with a decision naming the cap, never dropped and never sent over it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from engine_support import (
    add_prospect,
    enrollment_of,
    fire,
    pooled_sequence,
    prepare,
    write_templates,
)
from sqlmodel import select

from channels.email import SmtpSender
from sequencer.app.wiring import build as build_runtime
from sequencer.core.config import Settings
from sequencer.core.models import CapCounter, Decision, Mailbox
from sequencer.engine.runtime import Runtime
from sequencer.engine.tick import tick
from sequencer.sending import caps

TODAY = date(2026, 11, 30)  # a Monday
NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
NEXT_WINDOW = datetime(2026, 12, 1, 13, 0, tzinfo=UTC)  # Tuesday 08:00 New York


def _mailbox(**fields: object) -> Mailbox:
    values = {"id": 7, "address": "alex@outreach.example", "sending_domain": "outreach.example",
              "daily_cap": 40, **fields}
    return Mailbox(**values)


def _counters(session) -> dict[str, int]:
    session.expire_all()
    return {row.key: row.used for row in session.exec(select(CapCounter))}


def _caps(limit: int = 5, *, key: str = "mailbox:1:2026-11-30") -> list[caps.Cap]:
    return [caps.Cap(key, limit, f"{key} cap ({limit}/day)", TODAY)]


# --- mailbox_daily_limit: the warm-up ramp ---------------------------------------------------


def test_without_a_ramp_the_mailbox_cap_is_its_daily_cap():
    limit, label = caps.mailbox_daily_limit(_mailbox(daily_cap=40), TODAY)

    assert (limit, label) == (40, "40/day")


def test_ramp_day_one_allows_the_starting_volume():
    mailbox = _mailbox(warmup_start=5, warmup_increment=3, warmup_started_on=TODAY)

    assert caps.mailbox_daily_limit(mailbox, TODAY) == (5, "warm-up day 1: 5/day of 40")


def test_ramp_day_k_adds_the_increment_once_per_day():
    mailbox = _mailbox(warmup_start=5, warmup_increment=3, warmup_started_on=TODAY)

    assert caps.mailbox_daily_limit(mailbox, TODAY + timedelta(days=4)) == (17, "warm-up day 5: 17/day of 40")


def test_ramp_stops_at_the_daily_cap():
    mailbox = _mailbox(warmup_start=5, warmup_increment=3, warmup_started_on=TODAY)

    assert caps.mailbox_daily_limit(mailbox, TODAY + timedelta(days=11)) == (38, "warm-up day 12: 38/day of 40")
    assert caps.mailbox_daily_limit(mailbox, TODAY + timedelta(days=12)) == (40, "40/day")
    assert caps.mailbox_daily_limit(mailbox, TODAY + timedelta(days=400)) == (40, "40/day")


def test_a_ramp_that_starts_tomorrow_allows_only_the_starting_volume_today():
    mailbox = _mailbox(warmup_start=5, warmup_increment=3, warmup_started_on=TODAY + timedelta(days=1))

    assert caps.mailbox_daily_limit(mailbox, TODAY)[0] == 5


# --- caps_for: keys, limits and labels ------------------------------------------------------


def test_caps_for_one_email_names_every_cap_it_counts_against():
    settings = Settings(domain_daily_cap=300, recipient_domain_daily_cap=4, recipient_domain_weekly_cap=9)
    mailbox = _mailbox(warmup_start=5, warmup_increment=3, warmup_started_on=TODAY - timedelta(days=2))

    found = caps.caps_for(settings, mailbox, "northwind.example", NOW)

    assert [(c.key, c.limit, c.label) for c in found] == [
        ("mailbox:7:2026-11-30", 11, "mailbox alex@outreach.example daily cap (warm-up day 3: 11/day of 40)"),
        ("domain:outreach.example:2026-11-30", 300, "sending domain outreach.example daily cap (300/day)"),
        ("recipient:northwind.example:2026-11-30", 4, "recipient domain northwind.example daily cap (4/day)"),
        ("recipient-week:northwind.example:2026-W49", 9,
         "recipient domain northwind.example weekly cap (9/week)"),
    ]


def test_daily_counters_expire_with_their_day_and_weekly_ones_with_their_sunday():
    found = caps.caps_for(Settings(), _mailbox(), "northwind.example", NOW)

    assert [c.expires_on for c in found] == [TODAY, TODAY, TODAY, date(2026, 12, 6)]


@pytest.mark.parametrize(
    ("day", "week_key"),
    [
        (date(2026, 12, 31), "2026-W53"),  # 2026 has 53 ISO weeks
        (date(2027, 1, 1), "2026-W53"),  # a new calendar year, the same ISO week
        (date(2027, 1, 3), "2026-W53"),
        (date(2027, 1, 4), "2027-W01"),
        (date(2024, 12, 30), "2025-W01"),  # the ISO year starts before the calendar year
    ],
)
def test_the_weekly_key_is_the_iso_week_across_a_year_boundary(day, week_key):
    now = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=12)

    weekly = caps.caps_for(Settings(), _mailbox(), "northwind.example", now)[-1]

    assert weekly.key == f"recipient-week:northwind.example:{week_key}"
    assert weekly.expires_on.weekday() == 6 and 0 <= (weekly.expires_on - day).days <= 6


# --- reserve: one atomic step over every counter ---------------------------------------------


def test_reserve_counts_one_send_against_every_cap(session):
    found = caps.caps_for(Settings(), _mailbox(), "northwind.example", NOW)

    assert caps.reserve(session, found) is None
    assert caps.reserve(session, found) is None
    session.commit()

    assert _counters(session) == {c.key: 2 for c in found}
    row = session.get(CapCounter, "recipient-week:northwind.example:2026-W49")
    assert row.expires_on == date(2026, 12, 6)


def test_reserve_reports_the_full_cap_and_counts_none_of_them(session):
    roomy = caps.Cap("mailbox:1:2026-11-30", 10, "mailbox cap", TODAY)
    tight = caps.Cap("recipient:northwind.example:2026-11-30", 1, "recipient cap (1/day)", TODAY)
    after = caps.Cap("recipient-week:northwind.example:2026-W49", 10, "weekly cap", TODAY)
    assert caps.reserve(session, [roomy, tight, after]) is None
    session.commit()

    full = caps.reserve(session, [roomy, tight, after])
    session.commit()

    assert full == tight
    assert _counters(session) == {roomy.key: 1, tight.key: 1, after.key: 1}


def test_a_cap_of_zero_has_no_room(session):
    assert caps.reserve(session, _caps(limit=0)) == _caps(limit=0)[0]


def test_reserve_all_counts_a_batch_with_shared_counters_adding_up(session):
    to_northwind = caps.caps_for(Settings(), _mailbox(), "northwind.example", NOW)
    to_contoso = caps.caps_for(Settings(), _mailbox(), "contoso.example", NOW)
    assert caps.reserve(session, to_northwind) is None  # counters that exist already move too

    assert caps.reserve_all(session, [to_northwind, to_contoso, to_northwind])
    session.commit()

    counted = _counters(session)
    assert counted["mailbox:7:2026-11-30"] == 4 and counted["domain:outreach.example:2026-11-30"] == 4
    assert counted["recipient:northwind.example:2026-11-30"] == 3
    assert counted["recipient:contoso.example:2026-11-30"] == 1


def test_reserve_all_counts_nothing_when_one_counter_has_no_room_for_the_batch(session):
    roomy = caps.Cap("mailbox:1:2026-11-30", 10, "mailbox cap", TODAY)
    tight = caps.Cap("recipient:northwind.example:2026-11-30", 2, "recipient cap (2/day)", TODAY)
    assert caps.reserve(session, [roomy, tight]) is None
    session.commit()

    assert not caps.reserve_all(session, [[roomy, tight], [roomy, tight]])  # room for one more, not two
    session.commit()
    assert _counters(session) == {roomy.key: 1, tight.key: 1}

    fresh = caps.Cap("recipient:contoso.example:2026-11-30", 1, "recipient cap (1/day)", TODAY)
    assert not caps.reserve_all(session, [[roomy, fresh], [roomy, fresh]])  # more than a new counter holds
    assert caps.reserve_all(session, [])
    session.commit()
    assert _counters(session) == {roomy.key: 1, tight.key: 1}


# --- take_gap: the minimum gap between two sends from a mailbox --------------------------------


def test_take_gap_lets_the_first_send_through_then_holds_the_next_until_the_gap_has_passed(session):
    mailbox = Mailbox(address="alex@outreach.example", sending_domain="outreach.example")
    session.add(mailbox)
    session.commit()

    assert caps.take_gap(session, mailbox, NOW, 90)
    session.commit()
    assert not caps.take_gap(session, mailbox, NOW + timedelta(seconds=89.5), 90)
    assert caps.take_gap(session, mailbox, NOW + timedelta(seconds=90), 90)
    session.commit()

    session.refresh(mailbox)
    assert mailbox.last_sent_at == NOW + timedelta(seconds=90)


# --- purge_expired ---------------------------------------------------------------------------


def test_purge_drops_counters_whose_period_has_ended_and_keeps_the_rest(session):
    last_week = caps.caps_for(Settings(), _mailbox(), "northwind.example", NOW)
    this_monday = NOW + timedelta(days=7)
    this_week = caps.caps_for(Settings(), _mailbox(), "northwind.example", this_monday)
    caps.reserve(session, last_week)
    caps.reserve(session, this_week)
    session.commit()

    dropped = caps.purge_expired(session, this_monday.date())
    session.commit()

    assert dropped == 4
    assert set(_counters(session)) == {c.key for c in this_week}


# --- the engine: a capped touch is deferred to the next window, never dropped ------------------

SAM = "sam@outreach-acme.example"
JO = "jo@outreach-acme.example"


@pytest.fixture
def desk(tmp_path, session, clock, smtp, settings):
    """Set up the one-email sequence sending from ``pool``; returns the engine's Runtime."""
    senders = []

    def start(pool: list[str], boxes: list[dict], **caps_settings: object) -> Runtime:
        configured = replace(settings, mailboxes=boxes, **caps_settings)
        root = write_templates(tmp_path / "templates", pooled_sequence(pool))
        prepare(session, clock.now(), configured, root)
        senders.append(SmtpSender(timeout=5))
        return build_runtime(configured, senders[-1], check_domains=False)

    yield start
    for sender in senders:
        sender.close()


def _box(smtp, address: str, **fields: object) -> dict:
    return {"address": address, "display_name": address.split("@")[0].title(), "smtp_host": smtp.host,
            "smtp_port": smtp.port, **fields}


def _due(session, clock, emails: list[str]) -> None:
    for email in emails:
        add_prospect(session, clock.now(), email)
        fire(session, clock.now(), "intent_surge", email=email, score=80)


def _deferrals(session) -> list[Decision]:
    session.expire_all()
    return list(session.exec(select(Decision).where(Decision.kind == "deferred").order_by(Decision.id)))


def _recipients(smtp) -> list[str]:
    return sorted(r for m in smtp.messages for r in m.rcpt_tos)


def test_a_full_mailbox_defers_the_rest_to_the_next_days_window_where_they_go(desk, session, clock, smtp):
    runtime = desk([SAM], [_box(smtp, SAM, daily_cap=3)])
    emails = [f"p{i}@company{i}.example" for i in range(5)]
    _due(session, clock, emails)

    report = tick(session, clock, runtime)

    assert report.outcomes == {"sent": 3, "deferred": 2}
    assert _recipients(smtp) == emails[:3]
    reason = f"no mailbox can send: {SAM}: mailbox {SAM} daily cap (3/day) reached"
    assert [(d.reason, d.detail["until"]) for d in _deferrals(session)] == [(reason, NEXT_WINDOW.isoformat())] * 2
    for email in emails[3:]:
        enrollment = enrollment_of(session, email)
        assert (enrollment.state, enrollment.current_step, enrollment.next_due_at) == ("active", 0, NEXT_WINDOW)

    clock.advance(timedelta(hours=1))
    tick(session, clock, runtime)
    assert len(smtp.messages) == 3  # still today: nothing over the cap

    clock.set(NEXT_WINDOW)
    assert tick(session, clock, runtime).outcomes == {"sent": 2}
    assert _recipients(smtp) == emails


def test_sends_another_worker_makes_after_the_plan_leave_the_batch_only_what_still_fits(
        desk, session, clock, smtp, db_url, monkeypatch):
    from sequencer.core.db import make_engine
    from sequencer.core.db import session as new_session
    from sequencer.enrollments import lifecycle

    runtime = desk([SAM], [_box(smtp, SAM, daily_cap=3)])
    emails = [f"p{i}@company{i}.example" for i in range(3)]
    _due(session, clock, emails)
    claim_many = lifecycle.claim_many

    def another_worker_sends_two_first(*args, **kwargs):  # between this tick's plan and its claim
        other = make_engine(db_url)
        with new_session(other) as elsewhere:
            mailbox = elsewhere.exec(select(Mailbox).where(Mailbox.address == SAM)).one()
            theirs = caps.caps_for(runtime.settings, mailbox, "else.example", clock.now())
            assert caps.reserve(elsewhere, theirs) is None and caps.reserve(elsewhere, theirs) is None
            elsewhere.commit()
        other.dispose()
        return claim_many(*args, **kwargs)

    monkeypatch.setattr(lifecycle, "claim_many", another_worker_sends_two_first)
    report = tick(session, clock, runtime)

    assert report.outcomes == {"sent": 1, "deferred": 2}
    assert _recipients(smtp) == emails[:1]
    reason = f"mailbox {SAM} daily cap (3/day) reached"
    assert [(d.reason, d.detail["until"]) for d in _deferrals(session)] == [(reason, NEXT_WINDOW.isoformat())] * 2
    assert _counters(session)[f"mailbox:{session.exec(select(Mailbox)).one().id}:2026-11-30"] == 3


def test_warm_up_day_one_sends_the_starting_volume_and_day_two_one_more(desk, session, clock, smtp):
    runtime = desk([SAM], [_box(smtp, SAM, daily_cap=10, warmup_start=2, warmup_increment=1)])
    emails = [f"p{i}@company{i}.example" for i in range(6)]
    _due(session, clock, emails)

    assert tick(session, clock, runtime).outcomes == {"sent": 2, "deferred": 4}
    assert "daily cap (warm-up day 1: 2/day of 10) reached" in _deferrals(session)[0].reason

    clock.set(NEXT_WINDOW)
    assert tick(session, clock, runtime).outcomes == {"sent": 3, "deferred": 1}
    assert "daily cap (warm-up day 2: 3/day of 10) reached" in _deferrals(session)[-1].reason
    assert _recipients(smtp) == emails[:5]


def test_the_sending_domain_cap_is_shared_by_every_mailbox_on_the_domain(desk, session, clock, smtp):
    runtime = desk([SAM, JO], [_box(smtp, SAM, daily_cap=100), _box(smtp, JO, daily_cap=100)],
                   domain_daily_cap=3)
    _due(session, clock, [f"p{i}@company{i}.example" for i in range(5)])

    report = tick(session, clock, runtime)

    assert report.outcomes == {"sent": 3, "deferred": 2}
    senders = sorted(m.mail_from.split("+")[0] for m in smtp.messages)
    assert senders == ["jo", "sam", "sam"]
    cap = "sending domain outreach-acme.example daily cap (3/day) reached"
    for decision in _deferrals(session):
        reasons = decision.reason.removeprefix("no mailbox can send: ").split("; ")
        assert sorted(reasons) == [f"{JO}: {cap}", f"{SAM}: {cap}"]


def test_one_company_gets_at_most_the_recipient_domain_daily_cap(desk, session, clock, smtp):
    runtime = desk([SAM], [_box(smtp, SAM, daily_cap=100)], recipient_domain_daily_cap=2)
    colleagues = [f"{name}@northwind.example" for name in ("ana", "ben", "cy", "dee", "eli")]
    _due(session, clock, [*colleagues, "li@other.example"])

    assert tick(session, clock, runtime).outcomes == {"sent": 3, "deferred": 3}
    assert _recipients(smtp) == ["ana@northwind.example", "ben@northwind.example", "li@other.example"]
    reasons = {d.reason for d in _deferrals(session)}
    assert reasons == {f"no mailbox can send: {SAM}: recipient domain northwind.example daily cap (2/day) reached"}

    clock.set(NEXT_WINDOW)
    assert tick(session, clock, runtime).outcomes == {"sent": 2, "deferred": 1}


def test_the_recipient_domain_weekly_cap_holds_the_rest_until_next_week(desk, session, clock, smtp):
    runtime = desk([SAM], [_box(smtp, SAM, daily_cap=100)], recipient_domain_daily_cap=2,
                   recipient_domain_weekly_cap=3)
    _due(session, clock, [f"{name}@northwind.example" for name in ("ana", "ben", "cy", "dee", "eli")])

    sent_by_day = []
    for day in (0, 1, 2, 7):  # Monday, Tuesday, Wednesday and the next Monday, 08:00 in New York
        clock.set(NOW if day == 0 else NEXT_WINDOW + timedelta(days=day - 1))
        tick(session, clock, runtime)
        sent_by_day.append(len(smtp.messages))

    assert sent_by_day == [2, 3, 3, 5]
    weekly = [d for d in _deferrals(session) if "weekly" in d.reason]
    assert weekly and weekly[0].reason.endswith("recipient domain northwind.example weekly cap (3/week) reached")


def test_the_minimum_gap_with_jitter_defers_the_next_send_and_says_so(desk, session, clock, smtp):
    runtime = desk([SAM], [_box(smtp, SAM, min_gap_seconds=300, gap_jitter_seconds=120)])
    emails = [f"p{i}@company{i}.example" for i in range(4)]
    _due(session, clock, emails)

    assert tick(session, clock, runtime).outcomes == {"sent": 1, "deferred": 3}

    deferrals = _deferrals(session)
    gaps = []
    for decision, email in zip(deferrals, emails[1:], strict=True):
        assert decision.detail["guard"] == "gap"
        assert decision.reason.startswith(f"mailbox {SAM}: minimum gap ")
        waited = (enrollment_of(session, email).next_due_at - clock.now()).total_seconds()
        assert 300 <= waited <= 420
        assert decision.reason == f"mailbox {SAM}: minimum gap {waited:.0f}s between sends"
        gaps.append(waited)
    assert len(set(gaps)) > 1  # the jitter differs from touch to touch

    first_due = min(enrollment_of(session, email).next_due_at for email in emails[1:])
    clock.set(first_due - timedelta(seconds=1))
    tick(session, clock, runtime)
    assert len(smtp.messages) == 1
    clock.set(first_due)
    tick(session, clock, runtime)
    assert len(smtp.messages) == 2
