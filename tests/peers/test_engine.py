"""The engine end to end: signals in, real SMTP delivery out, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from engine_support import add_prospect, enrollment_of, fire, prepare, write_templates
from sqlmodel import select

from channels import verp
from channels.email import SmtpSender
from channels.tasks import Task
from sequencer.app.wiring import build as build_runtime
from sequencer.core.db import make_engine
from sequencer.core.db import session as new_session
from sequencer.core.models import Decision, Enrollment, Touch
from sequencer.engine.steps import complete_task
from sequencer.engine.tick import tick
from sequencer.inbound.ingest import ingest_raw


@pytest.fixture
def workspace(tmp_path, session, clock, settings):
    root = write_templates(tmp_path / "templates")
    prepare(session, clock.now(), settings, root)
    return root


@pytest.fixture
def runtime(settings):
    sender = SmtpSender(timeout=5)
    yield build_runtime(settings, sender, check_domains=False)
    sender.close()


def _mail(smtp, index=-1):
    return message_from_bytes(smtp.messages[index].content, policy=policy.default)


def test_a_signal_enrolls_and_the_first_email_reaches_the_smtp_server(workspace, session, clock, smtp, runtime):
    add_prospect(session, clock.now(), "dana@northwind.example")

    outcome = fire(session, clock.now(), "intent_surge", email="dana@northwind.example", score=80, topic="CRM")
    report = tick(session, clock, runtime)

    assert len(outcome.enrolled) == 1
    assert report.outcomes == {"sent": 1}
    assert len(smtp.messages) == 1
    envelope = smtp.messages[0]
    message = _mail(smtp)
    touch = session.exec(select(Touch)).one()
    assert envelope.rcpt_tos == ["dana@northwind.example"]
    assert envelope.mail_from == verp.return_path("sam@outreach-acme.example", touch.id, runtime.settings.secret_key)
    assert verp.touch_id_in_address(envelope.mail_from, runtime.settings.secret_key) == touch.id
    assert message["Subject"] == "Hello Dana"
    assert message["From"] == "Sam Rivera <sam@outreach-acme.example>"
    assert message["Message-ID"] == f"<{touch.message_id}>"
    assert touch.message_id.endswith("@outreach-acme.example")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Unsubscribe"].startswith("<https://go.outreach-acme.example/u/")
    text = message.get_body(("plain",)).get_content()
    assert "Saw the CRM surge." in text and "Unsubscribe with one click: https://" in text
    assert message.get_body(("html",)) is not None
    assert touch.state == "sent" and touch.sent_at == clock.now()


def test_signal_below_the_filter_does_not_enroll(workspace, session, clock):
    add_prospect(session, clock.now(), "dana@northwind.example")

    outcome = fire(session, clock.now(), "intent_surge", email="dana@northwind.example", score=20)

    assert outcome.enrolled == []
    decision = session.exec(select(Decision).where(Decision.kind == "not_enrolled")).one()
    assert "signal.score at_least 50 (was 20)" in decision.reason


def test_follow_up_waits_business_days_threads_then_tasks_and_signals(workspace, session, clock, smtp, runtime):
    add_prospect(session, clock.now(), "dana@northwind.example")
    fire(session, clock.now(), "intent_surge", email="dana@northwind.example", score=80)
    tick(session, clock, runtime)
    first = _mail(smtp, 0)

    clock.advance(timedelta(days=1))
    tick(session, clock, runtime)
    assert len(smtp.messages) == 1  # two business days have not passed

    clock.advance(timedelta(days=1))  # Wednesday 10:00 New York: two business days after Monday
    tick(session, clock, runtime)
    second = _mail(smtp, 1)
    assert second["Subject"] == "Re: Hello Dana"
    assert second["In-Reply-To"] == first["Message-ID"]
    assert second["References"] == first["Message-ID"]

    tick(session, clock, runtime)
    task = session.exec(select(Task)).one()
    assert (task.kind, task.owner, task.state) == ("call", "sam.sdr@acme.example", "open")
    assert task.body == "Call Dana about Northwind."
    assert enrollment_of(session, "dana@northwind.example").waiting_for == "task"

    assert complete_task(session, clock.now(), task.id, "no_answer", rules=runtime.rules) == "advanced"
    enrollment = enrollment_of(session, "dana@northwind.example")
    assert enrollment.waiting_for == "website_visit"

    clock.advance(timedelta(hours=2))
    outcome = fire(session, clock.now(), "website_visit", email="dana@northwind.example", page="/pricing")
    assert outcome.woken == [enrollment.id]
    tick(session, clock, runtime)  # the wait ends
    tick(session, clock, runtime)  # the last email, in a new thread
    last = _mail(smtp, 2)
    assert last["Subject"] == "A new idea for Northwind"
    assert last["In-Reply-To"] is None
    tick(session, clock, runtime)
    assert enrollment_of(session, "dana@northwind.example").state == "finished"


def test_wait_for_signal_times_out_without_the_signal(workspace, session, clock, smtp, runtime):
    add_prospect(session, clock.now(), "dana@northwind.example")
    fire(session, clock.now(), "intent_surge", email="dana@northwind.example", score=80)
    tick(session, clock, runtime)
    clock.advance(timedelta(days=2))
    tick(session, clock, runtime)
    tick(session, clock, runtime)
    complete_task(session, clock.now(), session.exec(select(Task)).one().id, "voicemail", rules=runtime.rules)

    clock.advance(timedelta(hours=47))
    tick(session, clock, runtime)
    assert enrollment_of(session, "dana@northwind.example").waiting_for == "website_visit"
    clock.advance(timedelta(hours=2))
    tick(session, clock, runtime)

    kinds = [d.kind for d in session.exec(select(Decision).order_by(Decision.id))]
    assert "timed_out" in kinds
    assert enrollment_of(session, "dana@northwind.example").waiting_for == ""


def test_a_line_break_in_a_value_leaves_the_subject_one_line_and_adds_no_header(
        workspace, session, clock, smtp, runtime):
    add_prospect(session, clock.now(), "dana@northwind.example", first_name="Dana\r\nBcc: all@else.example")
    fire(session, clock.now(), "intent_surge", email="dana@northwind.example", score=80)

    assert tick(session, clock, runtime).outcomes == {"sent": 1}

    mail = _mail(smtp)
    assert mail["Subject"] == "Hello Dana Bcc: all@else.example" and mail["Bcc"] is None
    assert [m.rcpt_tos for m in smtp.messages] == [["dana@northwind.example"]]


def test_a_missing_variable_blocks_the_touch_and_nothing_is_sent(workspace, session, clock, smtp, runtime):
    prospect = add_prospect(session, clock.now(), "lee@northwind.example", first_name="")
    fire(session, clock.now(), "intent_surge", email="lee@northwind.example", score=80)

    tick(session, clock, runtime)

    assert smtp.messages == []
    touch = session.exec(select(Touch)).one()
    assert touch.state == "blocked"
    assert "missing variable prospect.first_name" in touch.reason
    enrollment = enrollment_of(session, "lee@northwind.example")
    assert enrollment.state == "paused" and enrollment.reason.startswith("needs attention")

    # The SDR fills in the name and resumes: the same step is sent, once.
    from sequencer.enrollments import lifecycle

    prospect.first_name = "Lee"
    session.add(prospect)
    assert lifecycle.claim(session, enrollment)
    lifecycle.resume(session, clock.now(), enrollment, "fixed by hand", prospect)
    session.commit()
    tick(session, clock, runtime)
    assert _mail(smtp)["Subject"] == "Hello Lee"
    assert session.exec(select(Touch)).one().state == "sent"


def test_claim_many_claims_the_unchanged_and_leaves_the_one_changed_elsewhere(workspace, session, clock, db_url):
    from sequencer.enrollments import lifecycle

    for name in ("ann", "bob", "cy"):
        add_prospect(session, clock.now(), f"{name}@northwind.example")
        fire(session, clock.now(), "intent_surge", email=f"{name}@northwind.example", score=80)
    ann, bob, cy = (enrollment_of(session, f"{name}@northwind.example") for name in ("ann", "bob", "cy"))
    other = make_engine(db_url)  # another worker changes bob after this one read him
    with new_session(other) as elsewhere:
        assert lifecycle.claim(elsewhere, elsewhere.get(Enrollment, bob.id))
        elsewhere.commit()
    other.dispose()
    lease = clock.now() + timedelta(minutes=10)

    claimed = lifecycle.claim_many(session, [(ann, 0), (bob, 0), (cy, 0)], next_due_at=lease)
    session.commit()

    assert claimed == {ann.id, cy.id}
    session.expire_all()
    assert [(e.version, e.next_due_at == lease) for e in (ann, bob, cy)] == [(1, True), (1, False), (1, True)]
    assert lifecycle.claim_many(session, [(ann, 0)]) == set()  # a version already taken claims nothing


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_claim_many_finds_its_rows_by_key_on_sqlite(workspace, session, clock, engine):
    from sqlalchemy import event

    from sequencer.enrollments import lifecycle

    for name in ("ann", "bob"):
        add_prospect(session, clock.now(), f"{name}@northwind.example")
        fire(session, clock.now(), "intent_surge", email=f"{name}@northwind.example", score=80)
    ann, bob = (enrollment_of(session, f"{name}@northwind.example") for name in ("ann", "bob"))
    seen = []
    event.listen(engine, "before_cursor_execute", lambda conn, cursor, sql, params, *rest: seen.append((sql, params)))

    assert lifecycle.claim_many(session, [(ann, 0), (bob, 0)]) == {ann.id, bob.id}

    sql, params = next((sql, params) for sql, params in seen if sql.startswith("UPDATE enrollment"))
    plan = " ".join(row[-1] for row in session.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params))
    assert "SEARCH enrollment USING INTEGER PRIMARY KEY" in plan and "SCAN enrollment" not in plan, plan


@pytest.mark.parametrize("lost", [False, True])
def test_step_on_moves_every_enrollment_whose_claim_holds_and_only_those(
        workspace, session, clock, db_url, lost):
    from sequencer.core.models import Prospect, SequenceVersion
    from sequencer.enrollments import lifecycle

    for name in ("ann", "bob", "cy"):
        add_prospect(session, clock.now(), f"{name}@northwind.example")
        fire(session, clock.now(), "intent_surge", email=f"{name}@northwind.example", score=80)
    ann, bob, cy = (enrollment_of(session, f"{name}@northwind.example") for name in ("ann", "bob", "cy"))
    if lost:  # another worker changes bob after this one read him
        other = make_engine(db_url)
        with new_session(other) as elsewhere:
            assert lifecycle.claim(elsewhere, elsewhere.get(Enrollment, bob.id))
            elsewhere.commit()
        other.dispose()
    definition = session.get(SequenceVersion, ann.sequence_version_id).definition
    moves = [lifecycle.Move(e, 0, definition, session.get(Prospect, e.prospect_id),
                              {"thread_subject": f"to {e.id}"} if e is cy else {}) for e in (ann, bob, cy)]

    moved = lifecycle.step_on(session, clock.now(), moves)
    session.commit()

    assert moved == ({ann.id, cy.id} if lost else {ann.id, bob.id, cy.id})
    session.expire_all()
    steps = [(e.current_step, e.version) for e in (ann, bob, cy)]
    assert steps == [(1, 1), (0, 1) if lost else (1, 1), (1, 1)]
    assert cy.thread_subject == f"to {cy.id}" and ann.next_due_at > clock.now() + timedelta(days=1)
    waits = session.exec(select(Decision.enrollment_id).where(Decision.kind == "waiting")).all()
    assert sorted(waits) == sorted(moved)


def test_a_reply_stops_the_enrollment_once(workspace, session, clock, smtp, runtime, settings):
    add_prospect(session, clock.now(), "dana@northwind.example")
    fire(session, clock.now(), "intent_surge", email="dana@northwind.example", score=80)
    tick(session, clock, runtime)
    sent = _mail(smtp)
    reply = EmailMessage()
    reply["From"] = "dana@northwind.example"
    reply["To"] = "sam@outreach-acme.example"
    reply["Subject"] = "Re: Hello Dana"
    reply["Message-ID"] = "<r1@northwind.example>"
    reply["In-Reply-To"] = sent["Message-ID"]
    reply.set_content("Interesting, tell me more.")

    first = ingest_raw(session, clock.now(), settings, bytes(reply))
    again = ingest_raw(session, clock.now(), settings, bytes(reply))

    assert "stopped enrollment" in first.action and not first.duplicate
    assert again.duplicate
    enrollment = enrollment_of(session, "dana@northwind.example")
    assert enrollment.state == "stopped" and enrollment.rule == "builtin.reply.positive"
    clock.advance(timedelta(days=5))
    tick(session, clock, runtime)
    assert len(smtp.messages) == 1


def test_concurrent_ticks_send_each_step_exactly_once(workspace, session, clock, smtp, settings, db_url):
    for i in range(30):
        add_prospect(session, clock.now(), f"p{i}@company{i}.example")
        fire(session, clock.now(), "intent_surge", email=f"p{i}@company{i}.example", score=90)
    errors: list[BaseException] = []

    def worker() -> None:
        engine = make_engine(db_url)
        sender = SmtpSender(timeout=5)
        try:
            with new_session(engine) as own:
                tick(own, clock, build_runtime(settings, sender, check_domains=False))
        except BaseException as exc:
            errors.append(exc)
        finally:
            sender.close()
            engine.dispose()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    recipients = sorted(r for m in smtp.messages for r in m.rcpt_tos)
    assert recipients == sorted(f"p{i}@company{i}.example" for i in range(30))
    assert len(session.exec(select(Touch).where(Touch.state == "sent")).all()) == 30


def test_a_touch_left_sending_by_a_crash_is_never_sent_again(workspace, session, clock, smtp, runtime):
    add_prospect(session, clock.now(), "dana@northwind.example")
    fire(session, clock.now(), "intent_surge", email="dana@northwind.example", score=80)
    enrollment = enrollment_of(session, "dana@northwind.example")
    # A worker claimed the touch and died before recording the SMTP result.
    session.add(Touch(enrollment_id=enrollment.id, prospect_id=enrollment.prospect_id, step_index=0,
                      step_id="first", channel="email", state="sending", created_at=clock.now()))
    session.commit()

    report = tick(session, clock, runtime)

    assert report.outcomes == {"unknown": 1}
    assert smtp.messages == []
    touch = session.exec(select(Touch)).one()
    assert touch.state == "unknown"
    assert enrollment_of(session, "dana@northwind.example").current_step == 1


def test_a_permanent_smtp_refusal_fails_the_touch_and_stops(workspace, session, clock, smtp, runtime):
    smtp.refuse("gone@northwind.example", "550 5.1.1 <gone@northwind.example>: user unknown")
    add_prospect(session, clock.now(), "gone@northwind.example")
    fire(session, clock.now(), "intent_surge", email="gone@northwind.example", score=80)

    report = tick(session, clock, runtime)

    assert report.outcomes == {"failed": 1}
    touch = session.exec(select(Touch)).one()
    assert touch.state == "failed" and "550" in touch.reason and "user unknown" in touch.reason
    assert enrollment_of(session, "gone@northwind.example").state == "stopped"


def test_an_unreachable_smtp_server_is_retried_later_not_dropped(workspace, session, clock, smtp, runtime):
    from sequencer.core.models import Mailbox

    add_prospect(session, clock.now(), "dana@northwind.example")
    fire(session, clock.now(), "intent_surge", email="dana@northwind.example", score=80)
    mailbox = session.exec(select(Mailbox).where(Mailbox.address == "sam@outreach-acme.example")).one()
    mailbox.smtp_port = 1  # nothing listens there
    session.add(mailbox)
    session.commit()

    # The relay's failure, not the message's: tried again in seconds (tests/peers/test_relay_outage.py).
    assert tick(session, clock, runtime).outcomes == {"relay_retry": 1}
    touch = session.exec(select(Touch)).one()
    assert touch.state == "retry" and "cannot connect" in touch.reason
    enrollment = enrollment_of(session, "dana@northwind.example")
    assert enrollment.next_due_at == clock.now() + timedelta(seconds=2)

    mailbox.smtp_port = smtp.port
    session.add(mailbox)
    session.commit()
    clock.advance(timedelta(seconds=2))
    assert tick(session, clock, runtime).outcomes == {"sent": 1}
    assert len(smtp.messages) == 1


def _counted(session):
    from sequencer.core.models import CapCounter

    session.expire_all()
    return {row.key.split(":")[0]: row.used for row in session.exec(select(CapCounter))}


def test_a_temporary_refusal_gives_its_cap_places_back_so_the_retry_counts_once(
        workspace, session, clock, smtp, runtime):
    smtp.refuse("dana@northwind.example", "451 4.7.1 greylisted, try again later")
    add_prospect(session, clock.now(), "dana@northwind.example")
    fire(session, clock.now(), "intent_surge", email="dana@northwind.example", score=80)

    assert tick(session, clock, runtime).outcomes == {"retry": 1}
    assert set(_counted(session).values()) == {0}
    # The rules file is the one retry policy (built-in: 3 sends, 24 h apart); the decision names the next one.
    retry = session.exec(select(Decision).where(Decision.kind == "retry")).one()
    assert retry.rule == "builtin.bounce.soft" and "2026-12-01 15:00 UTC" in retry.reason, retry.reason

    smtp.handler.refuse.clear()
    clock.advance(timedelta(hours=23))
    assert tick(session, clock, runtime).outcomes == {}
    clock.advance(timedelta(hours=1))
    assert tick(session, clock, runtime).outcomes == {"sent": 1}
    assert _counted(session) == {"mailbox": 1, "domain": 1, "recipient": 1, "recipient-week": 1}


def test_a_permanent_refusal_still_counts_against_the_caps(workspace, session, clock, smtp, runtime):
    smtp.refuse("gone@northwind.example", "550 5.1.1 user unknown")
    add_prospect(session, clock.now(), "gone@northwind.example")
    fire(session, clock.now(), "intent_surge", email="gone@northwind.example", score=80)

    assert tick(session, clock, runtime).outcomes == {"failed": 1}
    assert _counted(session) == {"mailbox": 1, "domain": 1, "recipient": 1, "recipient-week": 1}


def test_an_email_whose_final_reply_never_comes_is_unknown_never_resent_and_the_sequence_goes_on(
        workspace, session, clock, settings):
    from scripted_smtp import scripted

    from sequencer.core.models import Mailbox

    add_prospect(session, clock.now(), "dana@northwind.example")
    fire(session, clock.now(), "intent_surge", email="dana@northwind.example", score=80)
    with scripted(["PIPELINING"], final_delay=1.5) as script:
        for mailbox in session.exec(select(Mailbox)).all():
            mailbox.smtp_port = script["port"]
            session.add(mailbox)
        session.commit()
        sender = SmtpSender(timeout=0.5)
        try:
            assert tick(session, clock, build_runtime(settings, sender, check_domains=False)).outcomes == {"unknown": 1}
            clock.advance(timedelta(days=7))
            tick(session, clock, build_runtime(settings, sender, check_domains=False))
        finally:
            sender.close()

    first = session.exec(select(Touch).where(Touch.step_index == 0)).one()
    assert first.state == "unknown" and "never mailed twice" in first.reason
    first_id = f"Message-ID: <{first.message_id}>".encode()
    assert sum(first_id in body for body in script["bodies"]) == 1  # the first, once
    assert enrollment_of(session, "dana@northwind.example").current_step >= 2  # went on past the wait
    unknown = session.exec(select(Decision.touch_id).where(Decision.kind == "unknown")).all()
    assert unknown[0] == first.id  # (the follow-up's final reply never came either)


def test_a_suppressed_address_is_blocked_right_before_the_send(workspace, session, clock, smtp, runtime):
    from suppression.store import unsubscribe

    add_prospect(session, clock.now(), "dana@northwind.example")
    fire(session, clock.now(), "intent_surge", email="dana@northwind.example", score=80)
    unsubscribe(session, clock.now(), "dana@northwind.example", "one-click")

    tick(session, clock, runtime)

    assert smtp.messages == []
    touch = session.exec(select(Touch)).one()
    assert touch.state == "blocked" and "suppressed: unsubscribed" in touch.reason
    assert enrollment_of(session, "dana@northwind.example").state == "stopped"


def test_outside_the_window_the_touch_waits_for_local_business_hours(workspace, session, clock, smtp, runtime):
    add_prospect(session, clock.now(), "kai@tokyo.example", first_name="Kai", timezone="Asia/Tokyo", country="JP")
    fire(session, clock.now(), "intent_surge", email="kai@tokyo.example", score=80)  # Tue 00:00 in Tokyo

    tick(session, clock, runtime)
    assert smtp.messages == []
    enrollment = enrollment_of(session, "kai@tokyo.example")
    assert enrollment.next_due_at.isoformat() == "2026-11-30T23:00:00+00:00"  # Tue 08:00 Tokyo

    clock.set(enrollment.next_due_at)
    tick(session, clock, runtime)
    assert len(smtp.messages) == 1


def test_ab_variants_are_weighted_and_stable_per_prospect():
    from sequencer.core.models import Prospect
    from sequencer.engine.steps import choose_variant

    step = {"id": "intro", "variants": [{"name": "A", "weight": 70}, {"name": "B", "weight": 30}]}
    picks = [choose_variant(step, Prospect(email=f"p{i}@x.example"))["name"] for i in range(2000)]
    again = [choose_variant(step, Prospect(email=f"p{i}@x.example"))["name"] for i in range(2000)]

    assert picks == again
    assert 0.65 < picks.count("A") / len(picks) < 0.75


def test_enrollments_keep_their_sequence_version_after_an_edit(workspace, session, clock, smtp, runtime, settings):
    from sequencer.sequences.versions import sync

    add_prospect(session, clock.now(), "dana@northwind.example")
    fire(session, clock.now(), "intent_surge", email="dana@northwind.example", score=80)
    (workspace / "steps" / "first.j2").write_text("Edited copy for {{ prospect.first_name }}.")
    sync(session, clock.now(), workspace)
    add_prospect(session, clock.now(), "li@other.example", first_name="Li")
    fire(session, clock.now(), "intent_surge", email="li@other.example", score=80)

    tick(session, clock, runtime)

    bodies = {m.rcpt_tos[0]: message_from_bytes(m.content, policy=policy.default).get_body(("plain",)).get_content()
              for m in smtp.messages}
    assert "Saw the research surge." in bodies["dana@northwind.example"]
    assert "Edited copy for Li." in bodies["li@other.example"]
    versions = {e.sequence_version_id for e in session.exec(select(Enrollment))}
    assert len(versions) == 2


def test_a_resolver_setting_that_cannot_work_defers_instead_of_crashing_the_tick(
    workspace, session, clock, smtp, settings
):
    from dataclasses import replace

    from sequencer.app import wiring as production

    broken = replace(settings, dns_nameservers=["not a resolver:port"])
    add_prospect(session, clock.now(), "dana@northwind.example")
    fire(session, clock.now(), "intent_surge", email="dana@northwind.example", score=80)

    report = tick(session, clock, production.build(broken, sender=SmtpSender(timeout=5)))

    assert report.outcomes == {"deferred": 1}
    assert smtp.messages == []
    decision = session.exec(select(Decision).where(Decision.kind == "deferred")).one()
    assert "cannot be checked" in decision.reason
