"""Steering a prospect across sequences: one active sequence by default, and a meeting, a
"not interested" or a reply stops every sequence the prospect is in, whoever reports it
(a task an SDR closes, a signal, an inbound reply); a human reply becomes a task to answer."""

from __future__ import annotations

import pytest
from engine_support import SEQUENCE, TEMPLATES, add_prospect, fire, prepare, write_templates
from inbound_support import reply, sent
from sqlmodel import select

from channels.email import SmtpSender
from channels.tasks import Task
from sequencer.app.wiring import build as build_runtime
from sequencer.core.models import Decision, Enrollment, Prospect
from sequencer.engine.steps import complete_task
from sequencer.engine.tick import tick
from sequencer.inbound.ingest import ingest_raw
from sequencer.intake import enrolling, signals
from sequencer.rules.parse import load_rules
from sequencer.rules.reactions import signal_reaction

DANA = "dana@northwind.example"
# A second sequence on the same signal: a call first, so its enrollment waits on the SDR.
NURTURE = """\
name: nurture
owner: sam.sdr@acme.example
{overlap}
trigger: {{signals: [intent_surge]}}
mailboxes: [sam@outreach-acme.example]
steps:
  - {{id: call, kind: call, template: call.j2}}
  - {{id: after, kind: email, subject: "After our call", template: second.j2}}
"""


@pytest.fixture
def runtime(session, clock, settings, tmp_path, request):
    overlap = getattr(request, "param", "allow_overlap: true")
    root = write_templates(tmp_path / "templates", SEQUENCE, TEMPLATES)
    (root / "sequences" / "nurture.yaml").write_text(NURTURE.format(overlap=overlap))
    prepare(session, clock.now(), settings, root)
    sender = SmtpSender(timeout=5)
    yield build_runtime(settings, sender, check_domains=False)
    sender.close()


def enrollments(session) -> dict[str, Enrollment]:
    session.expire_all()
    return {e.sequence_name: e for e in session.exec(select(Enrollment).order_by(Enrollment.id))}


def in_both(session, clock, runtime) -> Task:
    """Dana in both sequences, her first email sent and the nurture call queued."""
    add_prospect(session, clock.now(), DANA)
    fire(session, clock.now(), "intent_surge", email=DANA, score=80)
    assert set(enrollments(session)) == {"outbound", "nurture"}
    tick(session, clock, runtime)
    return session.exec(select(Task)).one()


@pytest.mark.parametrize("runtime", [""], indirect=True)
def test_one_active_sequence_per_prospect_by_default(session, clock, runtime) -> None:
    add_prospect(session, clock.now(), DANA)
    outcome = fire(session, clock.now(), "intent_surge", email=DANA, score=80)

    (first,) = enrollments(session)  # the sequence that came first; the other is refused
    other = ({"outbound", "nurture"} - {first}).pop()
    assert any(f"{other}: already in {first} (one active sequence per prospect" in reason
               for reason in outcome.skipped)
    refused = session.exec(select(Decision).where(Decision.kind == "not_enrolled")).one()
    assert refused.detail["sequence"] == other and "allow_overlap: true opts out" in refused.reason


def test_a_meeting_booked_on_a_call_stops_both_sequences(session, clock, runtime) -> None:
    task = in_both(session, clock, runtime)

    result = complete_task(session, clock.now(), task.id, "meeting_booked", rules=runtime.rules)

    running = enrollments(session)
    assert result == "stopped"
    assert {name: (e.state, e.rule) for name, e in running.items()} == {
        "outbound": ("stopped", "builtin.meeting_booked"), "nurture": ("stopped", "builtin.meeting_booked")}
    assert "(in nurture)" in running["outbound"].reason


def test_not_interested_on_a_call_stops_every_sequence(session, clock, runtime) -> None:
    task = in_both(session, clock, runtime)

    result = complete_task(session, clock.now(), task.id, "not_interested", rules=runtime.rules)

    assert result == "stopped"
    assert {e.state for e in enrollments(session).values()} == {"stopped"}
    assert enrollments(session)["outbound"].rule == "builtin.task.not_interested"


def test_a_connected_call_moves_on_and_records_no_rule(session, clock, runtime) -> None:
    task = in_both(session, clock, runtime)

    assert complete_task(session, clock.now(), task.id, "connected", rules=runtime.rules) == "advanced"

    assert {e.state for e in enrollments(session).values()} == {"active"}
    assert session.exec(select(Decision).where(Decision.kind == "ignored")).all() == []


def test_a_task_outcome_rule_written_by_a_manager_applies(session, clock, runtime, tmp_path) -> None:
    task = in_both(session, clock, runtime)
    path = tmp_path / "rules.yaml"
    path.write_text("defaults:\n  task.wrong_number: [stop]\n")

    assert complete_task(session, clock.now(), task.id, "wrong_number", rules=load_rules(path)) == "stopped"

    states = {name: e.state for name, e in enrollments(session).items()}
    assert states == {"outbound": "active", "nurture": "stopped"}  # stop: this enrollment only


@pytest.mark.parametrize(("kind", "payload", "rule"), [
    ("meeting_booked", {}, "builtin.meeting_booked"),
    ("reply", {"sentiment": "negative", "text": "Not for us, thanks."}, "builtin.reply.negative"),
])
def test_a_meeting_or_reply_signal_stops_every_sequence(session, clock, runtime, kind, payload, rule) -> None:
    in_both(session, clock, runtime)
    stored = signals.store(session, clock.now(), signals.SignalIn(type=kind, email=DANA, payload=payload,
                                                                  source="crm"))

    enrolling.process(session, clock.now(), stored.signal, react=signal_reaction(runtime.rules))

    assert {(e.state, e.rule) for e in enrollments(session).values()} == {("stopped", rule)}


def test_a_signal_processed_without_the_hook_stops_nothing(session, clock, runtime) -> None:
    """The reaction is the engine's (the tick passes it); intake alone only enrolls and wakes."""
    in_both(session, clock, runtime)
    stored = signals.store(session, clock.now(), signals.SignalIn(type="meeting_booked", email=DANA))

    enrolling.process(session, clock.now(), stored.signal)

    assert {e.state for e in enrollments(session).values()} == {"active"}


def test_the_tick_applies_the_rules_to_a_stored_meeting_booked_signal(session, clock, runtime) -> None:
    in_both(session, clock, runtime)
    signals.store(session, clock.now(), signals.SignalIn(type="meeting_booked", email=DANA, source="hubspot"))

    tick(session, clock, runtime)

    assert {e.state for e in enrollments(session).values()} == {"stopped"}


def test_a_human_reply_becomes_a_task_to_answer_with_its_text(session, clock, runtime, smtp) -> None:
    in_both(session, clock, runtime)
    first = sent(smtp.messages[-1], runtime.settings.secret_key)
    raw = reply(first, "Yes, this is timely. Could you send pricing for 40 seats?\nThanks, Dana")

    result = ingest_raw(session, clock.now(), runtime.settings, raw, rules=runtime.rules)

    assert any(item.startswith("queued reply task") for item in result.done)
    task = session.exec(select(Task).where(Task.kind == "reply")).one()
    assert task.owner == "sam.sdr@acme.example" and task.touch_id is None and task.state == "open"
    assert task.title.startswith("Reply from Dana (positive): Yes, this is timely.")
    assert task.title.endswith("answer it")
    assert "Could you send pricing for 40 seats?" in task.body and DANA in task.body
    # a positive reply stops the whole account: both of Dana's sequences
    assert {e.state for e in enrollments(session).values()} == {"stopped"}
    # closing the reply task moves no sequence and needs no step
    assert complete_task(session, clock.now(), task.id, "done", rules=runtime.rules) == "recorded"


def test_a_reply_task_text_is_bounded(session, clock, runtime, smtp) -> None:
    in_both(session, clock, runtime)
    first = sent(smtp.messages[-1], runtime.settings.secret_key)

    ingest_raw(session, clock.now(), runtime.settings, reply(first, "Interesting. " + "word " * 5000),
               rules=runtime.rules)

    task = session.exec(select(Task).where(Task.kind == "reply")).one()
    assert len(task.body) < 4300 and len(task.title) <= 300  # 25,000 characters came in
    assert session.exec(select(Prospect)).one().email == DANA
