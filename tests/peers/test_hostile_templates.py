"""A template that fails or runs away on one prospect's values blocks that one touch and
pauses its enrollment for the SDR; the same tick sends everyone else's (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from engine_support import add_prospect, enrollment_of, fire, prepare, write_templates
from sqlmodel import select

from channels.email import SmtpSender
from channels.tasks import Task
from sequencer.app.wiring import build as build_runtime
from sequencer.core.models import Decision, Touch
from sequencer.engine.tick import tick

SEQUENCE = """\
name: outbound
owner: sam.sdr@acme.example
trigger:
  signals: [intent_surge]
window: {days: mon-fri, start: "08:00", end: "17:00"}
mailboxes: [sam@outreach-acme.example]
steps:
  - id: first
    kind: {kind}
    subject: "Hello {{ prospect.first_name }}"
    template: first.j2
"""
GOOD, BAD = "good@northwind.example", "bad@northwind.example"


@pytest.fixture
def runtime(settings):
    sender = SmtpSender(timeout=5)
    yield build_runtime(settings, sender, check_domains=False)
    sender.close()


def _run(tmp_path, session, clock, settings, runtime, template: str, good: object, bad: object, kind: str = "email"):
    root = write_templates(tmp_path / "templates", SEQUENCE.replace("{kind}", kind),
                           {"first.j2": "Hi {{ prospect.first_name }},\n" + template + "\n"})
    prepare(session, clock.now(), settings, root)
    for email, value in ((GOOD, good), (BAD, bad)):
        add_prospect(session, clock.now(), email)
        fire(session, clock.now(), "intent_surge", email=email, n=value)
    return tick(session, clock, runtime)


@pytest.mark.parametrize(
    ("template", "good", "bad", "reason"),
    [
        ("{{ signal.n - 50 }} points", 80, "high", "first.j2:2: TypeError: unsupported operand type(s) for -"),
        ("{{ 100 / signal.n }}", 4, 0, "first.j2:2: ZeroDivisionError: division by zero"),
        ("{{ 'ha' * signal.n }}", 3, 10**9, "first.j2:2: '*' would build 2000000000 characters"),
        ("{{ 2 ** signal.n }}", 10, 10**7, "first.j2:2: '**' would build a number of over 4096 bits"),
        ("{{ '%0*d' % (signal.n, 7) }}", 3, 10**9, "first.j2:2: a '%' format width would build"),
        ("{{ 'x'.ljust(signal.n) }}|", 3, 10**9, "first.j2:2: str.ljust would build"),
        ("{{ 'x' | center(signal.n) }}", 3, 10**9, "first.j2:2: the center filter would build"),
        ("{% for i in range(signal.n) %}{% endfor %}", 3, 10**9, "first.j2:2: range() of 1000000000 items"),
        ("{% for i in range(signal.n) %}{% for j in range(signal.n) %}{% endfor %}{% endfor %}", 3, 10_000,
         "first.j2:2: the template does too much work"),
        ("{% for i in range(signal.n) %}{{ 'xxxxxxxxxx' }}{% endfor %}", 3, 10_000,
         "first.j2: the output is over 100000 characters"),
        ("{% set ns = namespace(s='ab') %}{% for i in range(signal.n) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
         "{{ ns.s | length }}", 3, 60, "first.j2:2: "),
        ("{% macro down(n) %}{{ down(n - 1) if n else 'done' }}{% endmacro %}{{ down(signal.n) }}", 3, 10**6,
         "first.j2:2: RecursionError: maximum recursion depth exceeded"),
    ],
    ids=["type-error", "zero-division", "repeat", "power", "percent-width", "ljust", "center", "range",
         "nested-loops", "output-size", "doubling", "recursion"],
)
def test_one_bad_render_blocks_its_own_touch_and_the_good_one_is_sent(
        tmp_path, session, clock, settings, smtp, runtime, template, good, bad, reason):
    report = _run(tmp_path, session, clock, settings, runtime, template, good, bad)

    assert report.outcomes == {"sent": 1, "blocked": 1}
    assert [m.rcpt_tos for m in smtp.messages] == [[GOOD]]
    touch = session.exec(select(Touch).where(Touch.recipient == BAD)).one()
    assert touch.state == "blocked" and touch.reason.startswith(reason), touch.reason
    enrollment = enrollment_of(session, BAD)
    assert enrollment.state == "paused" and enrollment.reason == f"needs attention: {touch.reason}"
    assert enrollment_of(session, GOOD).state != "paused"
    blocked = session.exec(select(Decision).where(Decision.kind == "blocked")).one()
    assert blocked.reason == touch.reason and blocked.enrollment_id == enrollment.id


def test_a_task_step_whose_template_fails_is_blocked_and_the_other_task_queued(
        tmp_path, session, clock, settings, smtp, runtime):
    report = _run(tmp_path, session, clock, settings, runtime, "Ask about {{ signal.n + 1 }} seats", 9, "many",
                     kind="call")

    assert report.outcomes == {"queued": 1, "blocked": 1}
    task = session.exec(select(Task)).one()
    assert "Ask about 10 seats" in task.body
    touch = session.exec(select(Touch).where(Touch.recipient == BAD)).one()
    assert touch.reason.startswith('first.j2:2: TypeError: can only concatenate str (not "int") to str')
    assert enrollment_of(session, BAD).state == "paused"
