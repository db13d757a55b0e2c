"""Reminders to the prospect before a meeting, and the acceptance loop's chase of overdue AEs.

Driven by the periodic step the embedded loop and Celery beat run (``reminders.run_due``)
with the production runtime's sender (``wiring.build``), over SMTP to the loopback server,
and read back from what it received. On SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest
from engine_support import add_prospect, fire, prepare, write_templates
from sqlmodel import select

from channels.email import SmtpSender
from channels.tasks import Task
from sequencer.app.wiring import build as build_runtime
from sequencer.core.config import ConfigError
from sequencer.core.models import CapCounter, Decision, Mailbox, Meeting, MeetingNotice
from sequencer.meetings import booking, reminders
from sequencer.rules.actions import rulebook
from sequencer.sending import caps
from suppression.store import add_entry, make_spec

pytest_plugins = ["meetings_support"]  # the workspace fixture
DANA = "dana@northwind.example"
AE = "alex.ae@acme.example"
SAM = "sam@outreach-acme.example"  # owned by sam.sdr@acme.example, Dana's owner
START = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)  # 10:00 in New York, Dana's zone


@pytest.fixture
def runtime(settings):
    sender = SmtpSender(timeout=5)
    yield build_runtime(settings, sender, check_domains=False)
    sender.close()


@pytest.fixture
def dana(tmp_path, session, clock, settings):
    prepare(session, clock.now(), settings, write_templates(tmp_path / "templates"))
    add_prospect(session, clock.now(), DANA, owner="sam.sdr@acme.example", last_name="Reyes")
    fire(session, clock.now(), "intent_surge", email=DANA, score=80)


def book(session, clock, settings, start=START, **extra) -> Meeting:
    meeting = booking.book(session, clock.now(), settings, rulebook(settings), booking.BookingIn(
        prospect_email=DANA, ae=AE, start=start, duration_minutes=30, title="Northwind x Acme",
        location="https://meet.acme.example/42", **extra))
    session.commit()
    return meeting


def run(session, clock, settings, runtime) -> list[str]:
    return reminders.run_due(session, clock.now(), settings, runtime.sender, runtime.domain_problem)


def reminder_mail(smtp) -> list:
    return [message_from_bytes(m.content, policy=policy.default) for m in smtp.messages]


def kinds(session, prefix="meeting_reminder") -> list[str]:
    return [d.kind for d in session.exec(select(Decision).order_by(Decision.id)) if d.kind.startswith(prefix)]


def test_the_24_and_1_hour_reminders_go_once_each_from_the_sdrs_mailbox(session, clock, settings, runtime, smtp,
                                                                       dana):
    meeting = book(session, clock, settings)
    clock.set(START - timedelta(hours=24, minutes=1))
    assert run(session, clock, settings, runtime) == []

    clock.set(START - timedelta(hours=24))
    assert run(session, clock, settings, runtime) == [f"meeting #{meeting.id}: 24 h reminder sent (to {DANA} from "
                                                      f"{SAM})"]
    clock.advance(timedelta(hours=5))
    assert run(session, clock, settings, runtime) == []
    clock.set(START - timedelta(minutes=59))
    assert len(run(session, clock, settings, runtime)) == 1
    assert run(session, clock, settings, runtime) == []

    day, hour = reminder_mail(smtp)
    assert [m.rcpt_tos for m in smtp.messages] == [[DANA], [DANA]]
    assert day["From"].addresses[0].addr_spec == SAM and day["To"] == DANA
    assert day["Subject"] == "Reminder: Northwind x Acme, Thursday 03 December 2026, 10:00 EST (America/New_York)"
    body = day.get_body(("plain",)).get_content()
    assert "When: Thursday 03 December 2026, 10:00 EST (America/New_York), 30 minutes" in body
    assert "Where: https://meet.acme.example/42" in body
    assert "in an hour" in hour.get_body(("plain",)).get_content()
    assert day["List-Unsubscribe"].startswith("<https://go.outreach-acme.example/u/")
    assert kinds(session) == ["meeting_reminder", "meeting_reminder"]
    assert [n.state for n in session.exec(select(MeetingNotice))] == ["sent", "sent"]


def test_a_reminder_counts_against_the_mailbox_caps(session, clock, settings, runtime, smtp, dana):
    book(session, clock, settings)
    clock.set(START - timedelta(hours=1))

    run(session, clock, settings, runtime)

    sam = session.exec(select(Mailbox).where(Mailbox.address == SAM)).one()
    assert session.get(CapCounter, caps.mailbox_key(sam, clock.now().date())).used == 1


def test_a_full_mailbox_cap_holds_the_reminder_back(session, clock, settings, runtime, smtp, dana):
    book(session, clock, settings)
    clock.set(START - timedelta(hours=1))
    sam = session.exec(select(Mailbox).where(Mailbox.address == SAM)).one()
    session.add(CapCounter(key=caps.mailbox_key(sam, clock.now().date()), used=100, cap_limit=100,
                           expires_on=clock.now().date()))
    session.commit()

    (line,) = run(session, clock, settings, runtime)

    assert "1 h reminder not sent (mailbox sam@outreach-acme.example daily cap (100/day) reached)" in line
    assert smtp.messages == []
    assert kinds(session) == ["meeting_reminder_skipped"]


def test_a_suppressed_prospect_gets_no_reminder(session, clock, settings, runtime, smtp, dana):
    book(session, clock, settings)
    add_entry(session, clock.now(), make_spec(DANA, kind="email", reason="unsubscribed"), added_by="test")
    session.commit()
    clock.set(START - timedelta(hours=1))

    (line,) = run(session, clock, settings, runtime)

    assert "not sent (suppressed: unsubscribed" in line
    assert smtp.messages == []
    assert run(session, clock, settings, runtime) == []  # decided once, not every tick


def test_an_unhealthy_sending_domain_holds_the_reminder_back(session, clock, settings, runtime, smtp, dana):
    book(session, clock, settings)
    clock.set(START - timedelta(hours=1))

    (line,) = reminders.run_due(session, clock.now(), settings, runtime.sender,
                                lambda _session, _now, domain: f"sending domain {domain} health fail: no SPF")

    assert "not sent (mailbox sam@outreach-acme.example: sending domain outreach-acme.example health fail" in line
    assert smtp.messages == []


def test_the_sending_window_does_not_apply_to_reminders(session, clock, settings, runtime, smtp, dana):
    early = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)  # 04:00 in New York, far outside the 08:00-17:00 window
    book(session, clock, settings, start=early)
    clock.set(early - timedelta(hours=1))

    assert len(run(session, clock, settings, runtime)) == 1
    assert len(smtp.messages) == 1


def test_a_reminder_whose_moment_passed_before_the_booking_is_not_sent(session, clock, settings, runtime, smtp,
                                                                       dana):
    book(session, clock, settings, start=clock.now() + timedelta(hours=3))  # the 24 h moment was yesterday
    assert run(session, clock, settings, runtime) == []

    clock.advance(timedelta(hours=2))
    (line,) = run(session, clock, settings, runtime)
    assert ": 1 h reminder sent (to dana@northwind.example" in line


def test_when_several_are_due_at_once_only_the_latest_goes(session, clock, settings, runtime, smtp, dana):
    book(session, clock, settings)
    clock.set(START - timedelta(minutes=30))  # the loop was down through both moments

    (line,) = run(session, clock, settings, runtime)

    assert ": 1 h reminder sent" in line
    assert len(smtp.messages) == 1


def test_a_reschedule_gets_reminders_for_its_new_time(session, clock, settings, runtime, smtp, dana):
    meeting = book(session, clock, settings)
    clock.set(START - timedelta(hours=24))
    run(session, clock, settings, runtime)
    booking.reschedule(session, clock.now(), meeting, START + timedelta(hours=6))
    session.commit()

    assert run(session, clock, settings, runtime) == []  # the new time's 24 h moment has not come
    clock.set(START + timedelta(hours=6) - timedelta(hours=24))
    assert len(run(session, clock, settings, runtime)) == 1
    assert "16:00 EST" in reminder_mail(smtp)[1]["Subject"]


def test_a_canceled_meeting_gets_no_reminder(session, clock, settings, runtime, smtp, dana):
    meeting = book(session, clock, settings)
    booking.cancel(session, clock.now(), meeting, "moved to next quarter")
    session.commit()
    clock.set(START - timedelta(hours=1))

    assert run(session, clock, settings, runtime) == []
    assert smtp.messages == []


def test_a_reminder_another_worker_claimed_is_not_sent_again(session, clock, settings, runtime, smtp, dana):
    meeting = book(session, clock, settings)
    clock.set(START - timedelta(hours=1))
    session.add(MeetingNotice(key=reminders.reminder_key(meeting, 1), meeting_id=meeting.id, kind="reminder",
                              at=clock.now()))
    session.commit()

    assert run(session, clock, settings, runtime) == []
    assert smtp.messages == []


def test_a_reminder_no_server_answered_is_tried_again(session, clock, settings, runtime, smtp, dana):
    book(session, clock, settings)
    clock.set(START - timedelta(hours=1))
    sam = session.exec(select(Mailbox).where(Mailbox.address == SAM)).one()
    port, sam.smtp_port = sam.smtp_port, 9  # the discard port: nobody listens on loopback
    session.add(sam)
    session.commit()

    (line,) = run(session, clock, settings, runtime)

    assert "1 h reminder not sent (cannot connect to 127.0.0.1:9" in line
    assert session.exec(select(CapCounter.used).where(CapCounter.key == caps.mailbox_key(sam, clock.now().date()))
                        ).one() == 0
    sam.smtp_port = port
    session.add(sam)
    session.commit()
    assert ": 1 h reminder sent" in run(session, clock, settings, runtime)[0]
    assert len(smtp.messages) == 1


# --- the acceptance loop -------------------------------------------------------------


def held(session, clock, settings, **extra) -> Meeting:
    meeting = book(session, clock, settings, **extra)
    clock.set(START + timedelta(minutes=35))
    booking.mark_held(session, clock.now(), meeting, by="sam.sdr@acme.example")
    session.commit()
    return meeting


def test_an_overdue_acceptance_gives_the_ae_one_task(session, clock, settings, runtime, smtp, dana):
    meeting = held(session, clock, settings)
    clock.advance(timedelta(days=14))
    assert run(session, clock, settings, runtime) == []  # the window closes after 14 days, not at them

    clock.advance(timedelta(minutes=1))
    (line,) = run(session, clock, settings, runtime)
    assert run(session, clock, settings, runtime) == []

    assert f"meeting #{meeting.id} held 2026-12-03: {AE} has not accepted or rejected it" in line
    (task,) = session.exec(select(Task)).all()
    assert (task.owner, task.kind, task.state) == (AE, "task", "open")
    assert f"sequencer meetings accept {meeting.id}" in task.body
    assert kinds(session, "meeting_acceptance_overdue") == ["meeting_acceptance_overdue"]


def test_a_meeting_decided_in_time_is_not_chased(session, clock, settings, runtime, smtp, dana):
    meeting = held(session, clock, settings)
    booking.accept(session, clock.now(), meeting)
    session.commit()
    clock.advance(timedelta(days=20))

    assert run(session, clock, settings, runtime) == []
    assert session.exec(select(Task)).all() == []


def test_an_overdue_meeting_without_an_enrollment_is_chased_in_the_log(session, clock, settings, runtime, smtp):
    prepare(session, clock.now(), settings, settings.templates_dir)  # no sequence ever ran for Dana
    meeting = held(session, clock, settings)
    clock.advance(timedelta(days=15))

    (line,) = run(session, clock, settings, runtime)

    assert session.exec(select(Task)).all() == []
    assert session.exec(select(MeetingNotice.state, MeetingNotice.reason)).one() == (
        "skipped", "no enrollment to queue a task on")
    decision = session.exec(select(Decision).where(Decision.kind == "meeting_acceptance_overdue")).one()
    assert decision.detail["meeting_id"] == meeting.id and decision.prospect_id == meeting.prospect_id
    assert line.startswith(f"meeting #{meeting.id} held")


# --- the wiring: the embedded loop and Celery beat run the step -----------------------


@pytest.fixture
def offline(monkeypatch):
    """The production wiring without DNS: no sending-domain checks, no domain refresh."""
    from sequencer.app import housekeeping, wiring

    real = wiring.build
    monkeypatch.setattr(wiring, "build", lambda config, sender=None, check_domains=True: real(config, sender, False))
    monkeypatch.setattr(housekeeping, "run", lambda *_: [])


def test_sequencer_run_sends_the_due_reminder(workspace, monkeypatch, offline):
    import sequencer.app.cli.run as run_cli

    monkeypatch.setattr(run_cli, "SystemClock", lambda: workspace.clock)
    workspace.enrolled()
    workspace.ok("meetings", "book", DANA, "--ae", AE, "--start", START.isoformat(), "--duration", "30")
    workspace.smtp.messages.clear()
    workspace.clock.set(START - timedelta(hours=1))

    output = workspace.ok("run", "--once")

    assert "meeting #1: 1 h reminder sent (to dana@northwind.example" in output
    assert [m.rcpt_tos for m in workspace.smtp.messages] == [[DANA]]


def test_celery_beat_runs_the_meetings_step(workspace, monkeypatch, offline):
    from sequencer.app import celery_app

    assert celery_app.app.conf.beat_schedule["meetings-due"]["task"] == celery_app.MEETINGS_TASK
    monkeypatch.setattr(celery_app, "settings", workspace.settings)
    monkeypatch.setattr(celery_app, "SystemClock", lambda: workspace.clock)
    celery_app._Process.reset()
    workspace.enrolled()
    workspace.ok("meetings", "book", DANA, "--ae", AE, "--start", START.isoformat(), "--duration", "30")
    workspace.smtp.messages.clear()
    workspace.clock.set(START - timedelta(hours=24))
    try:
        lines = celery_app.meetings_due()
        again = celery_app.meetings_due()
    finally:
        celery_app._close_connections()
        celery_app._Process.reset()

    assert lines == [f"meeting #1: 24 h reminder sent (to {DANA} from {SAM})"] and again == []
    assert [m.rcpt_tos for m in workspace.smtp.messages] == [[DANA]]


@pytest.mark.parametrize("hours", [[24, "1h"], [0], [-1], "24"], ids=["text", "zero", "negative", "not-a-list"])
def test_bad_reminder_hours_are_refused_by_name(session, clock, settings, runtime, smtp, dana, hours):
    book(session, clock, settings)
    settings.meeting_reminders_hours = hours
    clock.set(START - timedelta(hours=1))

    with pytest.raises(ConfigError, match=r"meeting_reminders_hours must be a list of hours before the meeting"):
        run(session, clock, settings, runtime)
    assert smtp.messages == []
