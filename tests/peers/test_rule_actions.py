"""Manager stop rules carried out: pause on OOO, suppress on bounce/complaint, retry, enroll.

Every test sends a real first email (loopback SMTP), feeds back what a mail system or the
prospect would send, then checks the enrollment, the suppression list and, where a rule
reschedules work, what the next tick actually sends.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from engine_support import (
    SEQUENCE,
    TEMPLATES,
    add_prospect,
    enrollment_of,
    fire,
    prepare,
    write_templates,
)
from inbound_support import (
    arf_complaint,
    dsn,
    out_of_office,
    reply,
    send_first_email,
    sent,
    verp_only_bounce,
)
from sqlmodel import select

from channels import verp
from channels.email import SmtpSender
from channels.tasks import Task
from sequencer.app import wiring as production
from sequencer.app.wiring import build as build_runtime
from sequencer.core.models import (
    CapCounter,
    Decision,
    Mailbox,
    Prospect,
    Touch,
)
from sequencer.engine.steps import complete_task
from sequencer.engine.tick import tick
from sequencer.inbound.ingest import ingest_raw
from sequencer.rules.parse import load_rules
from suppression.models import SuppressionEntry

DANA = "dana@northwind.example"
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


# A referral arrives with an address and no name: the templates must greet without one.
NAMELESS = SEQUENCE.replace("{{ prospect.first_name }}", "{{ prospect.first_name | default('there') }}")
NAMELESS_TEMPLATES = {name: text.replace("{{ prospect.first_name }}", "{{ prospect.first_name | default('there') }}")
                      for name, text in TEMPLATES.items()}


@pytest.fixture
def workspace(tmp_path, session, clock, settings):
    prepare(session, clock.now(), settings, write_templates(tmp_path / "templates", NAMELESS, NAMELESS_TEMPLATES))


@pytest.fixture
def runtime(workspace, settings):
    sender = SmtpSender(timeout=5)
    yield build_runtime(settings, sender, check_domains=False)
    sender.close()


def suppression(session, address: str) -> SuppressionEntry | None:
    session.expire_all()
    return session.exec(select(SuppressionEntry).where(SuppressionEntry.value == address)).first()


def rules_file(tmp_path, text: str):
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


# --- out of office -------------------------------------------------------------------------

@sqlite_only
def test_ooo_with_a_german_return_date_pauses_until_the_next_business_day_then_resumes(
        session, clock, settings, runtime, smtp):
    first, = send_first_email(session, clock, runtime, smtp, "j.hofmann@beispiel.example",
                              timezone="Europe/Berlin", country="DE")
    message = out_of_office(first, "Vielen Dank für Ihre Nachricht. Ich bin bis zum 5. Januar nicht im Büro "
                            "und habe keinen Zugriff auf meine E-Mails.", language="de", when=clock.now())

    result = ingest_raw(session, clock.now(), settings, message)

    enrollment = enrollment_of(session, "j.hofmann@beispiel.example")
    back_plus_one = datetime(2027, 1, 6, 7, 0, tzinfo=UTC)  # Wed 6 Jan 08:00 Berlin, the window's start
    assert result.message.kind == "out_of_office"
    assert enrollment.state == "paused" and enrollment.rule == "builtin.out_of_office"
    assert enrollment.paused_until == back_plus_one
    assert "until 2027-01-05 (+1 business day)" in enrollment.reason

    clock.set(back_plus_one - timedelta(minutes=1))
    tick(session, clock, runtime)
    assert len(smtp.messages) == 1 and enrollment_of(session, "j.hofmann@beispiel.example").state == "paused"

    clock.set(back_plus_one)
    report = tick(session, clock, runtime)
    assert report.outcomes.get("sent") == 1 and len(smtp.messages) == 2
    assert enrollment_of(session, "j.hofmann@beispiel.example").state == "active"


@sqlite_only
def test_ooo_without_a_date_pauses_five_days_then_the_next_step_goes_out_in_business_hours(
        session, clock, settings, runtime, smtp):
    first, = send_first_email(session, clock, runtime, smtp, DANA)
    paused_at = clock.now()  # Monday 10:00 in New York

    ingest_raw(session, clock.now(), settings, out_of_office(first, "I am out of the office with limited access."))

    assert enrollment_of(session, DANA).paused_until == paused_at + timedelta(days=5)
    clock.advance(timedelta(days=4, hours=23))
    tick(session, clock, runtime)
    assert enrollment_of(session, DANA).state == "paused" and len(smtp.messages) == 1
    clock.set(paused_at + timedelta(days=5))  # Saturday: resumed, but the window is closed
    tick(session, clock, runtime)
    assert enrollment_of(session, DANA).state == "active" and len(smtp.messages) == 1
    clock.set(datetime(2026, 12, 7, 13, 0, tzinfo=UTC))  # Monday 08:00 in New York
    tick(session, clock, runtime)
    assert len(smtp.messages) == 2 and smtp.messages[1].rcpt_tos == [DANA]


# --- bounces -------------------------------------------------------------------------------

@pytest.mark.parametrize("bounce", [
    pytest.param(lambda s: dsn(s, "5.1.1", f"550 5.1.1 <{s.to}>: Recipient address rejected: User unknown"),
                 id="dsn-with-original-headers"),
    pytest.param(verp_only_bounce, id="non-standard-verp-only"),
])
def test_a_hard_bounce_stops_and_suppresses_so_a_later_enrollment_is_refused(
        session, clock, settings, runtime, smtp, bounce):
    first, = send_first_email(session, clock, runtime, smtp, DANA)

    result = ingest_raw(session, clock.now(), settings, bounce(first))

    assert result.message.kind == "bounce" and result.message.bounce_type == "hard"
    assert result.message.touch_id == first.touch_id
    assert result.message.match_method in ("original-message-id", "verp")
    enrollment = enrollment_of(session, DANA)
    assert enrollment.state == "stopped" and enrollment.rule == "builtin.bounce.hard"
    entry = suppression(session, DANA)
    assert entry is not None and entry.reason == "hard_bounce" and entry.expires_at is None

    again = fire(session, clock.now(), "intent_surge", email=DANA, score=90)

    assert again.enrolled == [] and "suppressed: hard_bounce" in again.skipped[0]


@sqlite_only
def test_a_bounce_without_any_message_id_is_matched_by_the_verp_token(session, clock, settings, runtime, smtp):
    first, = send_first_email(session, clock, runtime, smtp, DANA)

    result = ingest_raw(session, clock.now(), settings, verp_only_bounce(first))

    assert result.message.match_method == "verp"
    assert result.message.detail["match"]["evidence"] == \
        f"return-path token {verp.token(first.touch_id, settings.secret_key)}"


@sqlite_only
def test_a_soft_bounce_resends_the_step_after_the_back_off_and_gives_up_after_three(
        session, clock, settings, runtime, smtp):
    send_first_email(session, clock, runtime, smtp, DANA)

    for attempt in (1, 2):
        bounced = sent(smtp.messages[-1], settings.secret_key)
        ingest_raw(session, clock.now(), settings, dsn(bounced, "4.2.2", "452 4.2.2 Mailbox full"))
        assert enrollment_of(session, DANA).state == "active"
        clock.advance(timedelta(hours=23))
        tick(session, clock, runtime)
        assert len(smtp.messages) == attempt, "not before the back-off"
        clock.advance(timedelta(hours=1))
        tick(session, clock, runtime)
        assert len(smtp.messages) == attempt + 1, "the same step is sent again after 24 h"
        resent = sent(smtp.messages[-1], settings.secret_key)
        assert resent.subject == bounced.subject and resent.touch_id == bounced.touch_id
        assert resent.message_id != bounced.message_id

    ingest_raw(session, clock.now(), settings, dsn(sent(smtp.messages[-1]), "5.2.2", "552 5.2.2 Mailbox full"))

    enrollment = enrollment_of(session, DANA)
    assert enrollment.state == "stopped" and enrollment.rule == "builtin.bounce.soft"
    assert session.exec(select(Decision).where(Decision.kind == "retry_exhausted")).one()
    assert suppression(session, DANA) is None
    clock.advance(timedelta(days=3))
    tick(session, clock, runtime)
    assert len(smtp.messages) == 3


def test_a_delay_notice_is_not_a_bounce_to_act_on_the_sending_mta_still_retries(
        session, clock, settings, runtime, smtp):
    """Action: delayed (RFC 3464) means the message is still queued: a resend now could arrive twice."""
    send_first_email(session, clock, runtime, smtp, DANA)
    bounced = sent(smtp.messages[-1], settings.secret_key)

    ingest_raw(session, clock.now(), settings, dsn(bounced, "4.2.2", "452 4.2.2 Mailbox full", action="delayed"))
    clock.advance(timedelta(hours=25))
    tick(session, clock, runtime)

    assert enrollment_of(session, DANA).state == "active"
    assert len(smtp.messages) == 1, "no resend of a message the sending MTA still holds"
    assert suppression(session, DANA) is None


@sqlite_only
def test_block_bounces_count_against_the_mailbox_and_five_pause_it(session, clock, settings, runtime, smtp):
    people = [f"p{i}@company{i}.example" for i in range(5)]
    touches = send_first_email(session, clock, runtime, smtp, *people)

    for touch in touches:
        ingest_raw(session, clock.now(), settings,
                   dsn(touch, "5.7.1", "554 5.7.1 Service unavailable; client host blocked using Spamhaus"))

    session.expire_all()
    mailbox = session.exec(select(Mailbox).where(Mailbox.address == "sam@outreach-acme.example")).one()
    assert mailbox.paused and mailbox.pause_reason == "5 block bounces (rule builtin.bounce.block)"
    assert session.get(CapCounter, f"blocks:mailbox:{mailbox.id}").used == 5
    assert session.exec(select(SuppressionEntry)).all() == []
    assert {enrollment_of(session, p).state for p in people} == {"active"}

    add_prospect(session, clock.now(), "new@fresh.example")
    fire(session, clock.now(), "intent_surge", email="new@fresh.example", score=80)
    report = tick(session, clock, runtime)

    assert report.outcomes == {"deferred": 1} and len(smtp.messages) == 5
    deferred = session.exec(select(Decision).where(Decision.kind == "deferred")).one()
    assert "sam@outreach-acme.example: paused (5 block bounces (rule builtin.bounce.block))" in deferred.reason


# --- complaints and unsubscribes -----------------------------------------------------------

@pytest.mark.parametrize(("message", "reason", "rule"), [
    pytest.param(arf_complaint, "complaint", "builtin.complaint", id="arf-complaint"),
    pytest.param(lambda s: reply(s, "Please unsubscribe me from these emails."), "unsubscribed",
                 "builtin.unsubscribe_request", id="unsubscribe-reply"),
])
def test_a_complaint_or_unsubscribe_request_suppresses_and_stops(
        session, clock, settings, runtime, smtp, message, reason, rule):
    first, = send_first_email(session, clock, runtime, smtp, DANA)

    result = ingest_raw(session, clock.now(), settings, message(first))

    assert result.message.touch_id == first.touch_id
    enrollment = enrollment_of(session, DANA)
    assert enrollment.state == "stopped" and enrollment.rule == rule
    entry = suppression(session, DANA)
    assert entry is not None and entry.reason == reason and entry.added_by == f"rule {rule}"


# --- referrals -----------------------------------------------------------------------------

@sqlite_only
def test_a_left_company_reply_enrolls_the_new_contact_when_the_rules_say_so(
        session, clock, settings, runtime, smtp, tmp_path):
    settings.rules_file = rules_file(tmp_path, "defaults:\n  left_company: [stop, {enroll: {sequence: outbound}}]\n")
    first, = send_first_email(session, clock, runtime, smtp, DANA)
    message = reply(first, "Dana has left the company. Please contact lee.new@northwind.example instead.",
                    sender="reception@northwind.example")

    result = ingest_raw(session, clock.now(), settings, message)

    assert result.message.kind == "left_company"
    dana = enrollment_of(session, DANA)
    assert dana.state == "stopped" and dana.rule == "defaults.left_company"
    referred = enrollment_of(session, "lee.new@northwind.example")
    assert referred.state == "active" and referred.sequence_name == "outbound"
    assert session.get(Prospect, referred.prospect_id).custom["referred_by"] == "reception@northwind.example"
    tick(session, clock, runtime)
    assert smtp.messages[-1].rcpt_tos == ["lee.new@northwind.example"]
    assert sent(smtp.messages[-1]).subject == "Hello there"


# --- refusals at send time, through the production wiring ----------------------------------

@pytest.fixture
def production_runtime(workspace, settings):
    built = production.build(settings, check_domains=False)
    yield built
    built.sender.close()


@sqlite_only
def test_an_smtp_user_unknown_refusal_suppresses_and_stops(session, clock, smtp, production_runtime):
    smtp.refuse(DANA, "550 5.1.1 user unknown")
    add_prospect(session, clock.now(), DANA)
    fire(session, clock.now(), "intent_surge", email=DANA, score=80)

    tick(session, clock, production_runtime)

    enrollment = enrollment_of(session, DANA)
    assert enrollment.state == "stopped" and enrollment.rule == "builtin.bounce.hard"
    assert suppression(session, DANA).reason == "hard_bounce"
    assert smtp.messages == []


@sqlite_only
def test_an_smtp_mailbox_full_refusal_is_retried_later(session, clock, smtp, production_runtime):
    smtp.refuse(DANA, "552 5.2.2 mailbox full")
    add_prospect(session, clock.now(), DANA)
    fire(session, clock.now(), "intent_surge", email=DANA, score=80)

    report = tick(session, clock, production_runtime)

    assert report.outcomes == {"retry": 1} and suppression(session, DANA) is None
    assert set(_counted(session).values()) == {0}  # the retry will count it
    smtp.handler.refuse.clear()  # the prospect made room
    clock.advance(timedelta(hours=24))
    tick(session, clock, production_runtime)
    assert [m.rcpt_tos for m in smtp.messages] == [[DANA]]
    assert session.exec(select(Touch)).one().state == "sent"
    counted = _counted(session)  # Monday's daily counters at 0, Tuesday's at 1: one delivery
    assert sorted(counted.values()) == [0, 0, 0, 1, 1, 1, 1]
    assert [used for key, used in counted.items() if key.startswith("recipient-week:")] == [1]  # not 2


def _counted(session) -> dict[str, int]:
    session.expire_all()
    return {row.key: row.used for row in session.exec(select(CapCounter))}


def test_a_message_with_an_unsafe_header_is_blocked_for_a_person_not_bounced(
        session, clock, smtp, production_runtime):
    mailbox = session.exec(select(Mailbox)).first()
    mailbox.display_name = "Sam\r\nBcc: everyone@else.example"  # stored before names were checked
    session.add(mailbox)
    session.commit()
    add_prospect(session, clock.now(), DANA)
    fire(session, clock.now(), "intent_surge", email=DANA, score=80)

    assert tick(session, clock, production_runtime).outcomes == {"blocked": 1}

    assert smtp.messages == [] and suppression(session, DANA) is None
    touch = session.exec(select(Touch)).one()
    assert touch.state == "blocked" and "a header is unsafe" in touch.reason
    enrollment = enrollment_of(session, DANA)
    assert enrollment.state == "paused" and enrollment.reason.startswith("needs attention: message not sent")
    assert set(_counted(session).values()) == {0}  # nothing was sent
    assert session.exec(select(Decision).where(Decision.kind == "send_failed")).all() == []


def test_smtp_mailbox_full_refusals_count_as_soft_bounces_and_the_third_gives_up(
        session, clock, smtp, production_runtime):
    smtp.refuse(DANA, "552 5.2.2 mailbox full")
    add_prospect(session, clock.now(), DANA)
    fire(session, clock.now(), "intent_surge", email=DANA, score=80)

    for _ in range(3):
        tick(session, clock, production_runtime)
        clock.advance(timedelta(hours=24))
    tick(session, clock, production_runtime)

    failures = session.exec(select(Decision).where(Decision.kind == "send_failed")).all()
    assert [f.detail["attempt"] for f in failures] == [1, 2, 3]
    assert session.exec(select(Decision).where(Decision.kind == "retry_exhausted")).one()
    enrollment = enrollment_of(session, DANA)
    assert enrollment.state == "stopped" and enrollment.rule == "builtin.bounce.soft"
    assert smtp.messages == []


@sqlite_only
def test_an_smtp_block_refusal_is_counted_against_the_mailbox_not_the_person(
        session, clock, smtp, production_runtime):
    smtp.refuse(DANA, "554 5.7.1 blocked")
    add_prospect(session, clock.now(), DANA)
    fire(session, clock.now(), "intent_surge", email=DANA, score=80)

    tick(session, clock, production_runtime)

    assert suppression(session, DANA) is None
    counted = session.exec(select(Decision).where(Decision.kind == "block_counted")).one()
    assert counted.rule == "builtin.bounce.block" and "1 block bounce(s) of 5 allowed" in counted.reason
    assert enrollment_of(session, DANA).state == "active"


def test_a_refusal_that_stops_the_account_stops_a_colleague_sent_to_in_the_same_batch(
        tmp_path, session, clock, smtp, settings, workspace):
    settings.rules_file = rules_file(tmp_path, "defaults:\n  bounce.block: [stop_account]\n")
    built = production.build(settings, check_domains=False)
    for name in ("bob", "ann"):  # bob's email goes out; ann's is refused, in one batch
        add_prospect(session, clock.now(), f"{name}@northwind.example")
        fire(session, clock.now(), "intent_surge", email=f"{name}@northwind.example", score=80)
    smtp.refuse("ann@northwind.example", "554 5.7.1 message blocked by policy")
    try:
        assert tick(session, clock, built).outcomes == {"sent": 1, "failed": 1}
    finally:
        built.sender.close()

    session.expire_all()
    bob = enrollment_of(session, "bob@northwind.example")
    assert (bob.state, bob.current_step, bob.next_due_at) == ("stopped", 0, None)
    kinds = session.exec(select(Decision.kind).where(Decision.enrollment_id == bob.id).order_by(Decision.id)).all()
    assert kinds == ["enrolled", "sent", "stopped"]  # not moved on to the wait after the stop


# --- meeting booked ------------------------------------------------------------------------

CALL_FIRST = """\
name: outbound
owner: sam.sdr@acme.example
trigger: {signals: [intent_surge]}
mailboxes: [sam@outreach-acme.example]
steps:
  - {id: call, kind: call, template: call.j2}
  - {id: follow-up, kind: email, subject: "After our call", template: second.j2}
"""


@pytest.mark.parametrize(("rules", "state", "result"), [
    pytest.param(None, "stopped", "stopped", id="builtin-stops"),
    pytest.param("defaults:\n  meeting_booked: [ignore]\n", "active", "advanced", id="override-ignore"),
])
def test_meeting_booked_on_a_task_applies_the_rule(session, clock, settings, smtp, tmp_path, rules, state, result):
    prepare(session, clock.now(), settings, write_templates(tmp_path / "templates", CALL_FIRST))
    add_prospect(session, clock.now(), DANA)
    fire(session, clock.now(), "intent_surge", email=DANA)
    tick(session, clock, build_runtime(settings, None, check_domains=False))
    task = session.exec(select(Task)).one()
    book = load_rules(rules_file(tmp_path, rules)) if rules else load_rules(None)

    outcome = complete_task(session, clock.now(), task.id, "meeting_booked", rules=book)

    enrollment = enrollment_of(session, DANA)
    assert outcome == result and enrollment.state == state
    if state == "stopped":
        assert enrollment.rule == "builtin.meeting_booked" and "meeting booked" in enrollment.reason
    else:
        ignored = session.exec(select(Decision).where(Decision.kind == "ignored")).one()
        assert ignored.rule == "defaults.meeting_booked" and enrollment.current_step == 1
