"""One step of one enrollment: end a wait, or make a touch (plan an email, queue a task).

Every change starts with a claim on the enrollment (``lifecycle.claim``, a
compare-and-set on its version); whoever loses the race rolls back and leaves the
enrollment alone (``LOST_RACE``). An email that passes its guards is not sent here: it is
added to the tick's outbox and sent with its batch (``send_batch``).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from channels import tasks as task_channel
from sequencer.core import decisions
from sequencer.core.config import Settings
from sequencer.core.models import Account, Enrollment, Prospect, SequenceVersion, Signal, Touch
from sequencer.engine import send_batch
from sequencer.engine.guards import TouchContext, Verdict, run_guards
from sequencer.engine.runtime import Runtime
from sequencer.engine.tick_state import TickState
from sequencer.enrollments import lifecycle
from sequencer.meetings import booking
from sequencer.meetings.booking import BookingIn, MeetingError
from sequencer.rules.actions import Event
from sequencer.rules.actions import apply as apply_rule
from sequencer.rules.book import RuleBook
from sequencer.rules.reactions import apply_task_outcome
from sequencer.sending import mailboxes
from sequencer.sequences import schedule
from sequencer.sequences.context import sender_values, template_context
from sequencer.sequences.rendering import RenderError, render

LOST_RACE = "lost_race"


def _claimed(session: Session, enrollment: Enrollment) -> bool:
    """Claim ``enrollment``, or undo this transaction: another worker changed it first."""
    if lifecycle.claim(session, enrollment):
        return True
    session.rollback()
    return False


def take(session: Session, now: datetime, runtime: Runtime, tick: TickState, enrollment: Enrollment,
         outbox: list[send_batch.PlannedEmail]) -> str:
    """One step of ``enrollment``; an email that may go is added to ``outbox`` ("planned")."""
    if enrollment.state != "active" or enrollment.next_due_at is None or enrollment.next_due_at > now:
        return "not_due"
    definition = session.get(SequenceVersion, enrollment.sequence_version_id).definition
    prospect = session.get(Prospect, enrollment.prospect_id)
    steps = definition["steps"]
    if enrollment.current_step >= len(steps):
        if lifecycle.claim(session, enrollment):
            lifecycle.finish(session, now, enrollment)
        session.commit()
        return "finished"
    step = steps[enrollment.current_step]
    if step["kind"] in ("wait", "wait_for_signal"):
        return _end_wait(session, now, enrollment, step, definition, prospect)
    return _touch(session, now, runtime, tick, enrollment, step, definition, prospect, outbox)


def _end_wait(session: Session, now: datetime, enrollment: Enrollment, step: dict, definition: dict,
              prospect: Prospect) -> str:
    if not _claimed(session, enrollment):
        return LOST_RACE
    if step["kind"] == "wait_for_signal" and enrollment.waiting_for:
        decisions.record(session, now, "timed_out", f"no {step['signal']!r} signal before the timeout",
                         enrollment=enrollment)
    lifecycle.enter_step(session, now, enrollment, enrollment.current_step + 1, definition, prospect)
    session.commit()
    return "waited"


def _touch(session: Session, now: datetime, runtime: Runtime, tick: TickState, enrollment: Enrollment,
           step: dict, definition: dict, prospect: Prospect, outbox: list[send_batch.PlannedEmail]) -> str:
    account = session.get(Account, prospect.account_id) if prospect.account_id else None
    if tick.touches is not None:  # read with the due enrollments this tick
        existing = tick.touches.get((enrollment.id, step["index"]))
    else:
        existing = session.exec(
            select(Touch).where(Touch.enrollment_id == enrollment.id, Touch.step_index == step["index"])
        ).first()
    if existing is not None and existing.state in ("sending", "claimed"):
        return _recover_unknown(session, now, enrollment, existing, definition, prospect)
    # A touch left "outbox" by a crash never reached a server: it is planned and sent like a new one.
    if existing is not None and existing.state in ("sent", "queued", "skipped"):
        return _repair_position(session, now, enrollment, definition, prospect)
    ctx = TouchContext(session=session, now=now, settings=runtime.settings, enrollment=enrollment,
                       prospect=prospect, account=account, step=step, channel=step["kind"],
                       definition=definition, tick=tick)
    verdict = run_guards(list(runtime.guards), ctx)
    if verdict.action == "defer":
        return _defer(session, now, enrollment, verdict)
    if verdict.action == "block":
        return _block(session, now, ctx, existing, verdict.reason, stop=True, guard=verdict.guard)
    if step["kind"] == "email":
        return _plan_email(session, now, runtime, ctx, existing, outbox)
    return _task(session, now, ctx, existing)


def _defer(session: Session, now: datetime, enrollment: Enrollment, verdict: Verdict) -> str:
    if not _claimed(session, enrollment):
        return LOST_RACE
    lifecycle.defer(session, now, enrollment, verdict.until, verdict.reason, verdict.guard)
    session.commit()
    return "deferred"


def _block(session: Session, now: datetime, ctx: TouchContext, existing: Touch | None, reason: str, *,
           stop: bool, guard: str) -> str:
    """Record a blocked touch; stop the enrollment, or pause it for a person to fix."""
    enrollment = ctx.enrollment
    if not _claimed(session, enrollment):
        return LOST_RACE
    touch = existing or new_touch(enrollment, ctx.step, ctx.prospect, now)
    touch.state = "blocked"
    touch.reason = reason
    session.add(touch)
    session.flush()
    decisions.record(session, now, "blocked", reason, enrollment=enrollment, touch_id=touch.id, guard=guard)
    if stop:
        lifecycle.stop(session, now, enrollment, f"blocked: {reason}", rule=guard)
    else:
        lifecycle.pause(session, now, enrollment, f"needs attention: {reason}")
    session.commit()
    return "blocked"


def new_touch(enrollment: Enrollment, step: dict, prospect: Prospect, now: datetime) -> Touch:
    return Touch(enrollment_id=enrollment.id, prospect_id=prospect.id, step_index=step["index"],
                 step_id=step["id"], channel=step["kind"], recipient=prospect.email, created_at=now)


def _recover_unknown(session: Session, now: datetime, enrollment: Enrollment, touch: Touch, definition: dict,
                     prospect: Prospect) -> str:
    """A touch left "sending" by a crash: never resend (at most once); record and move on."""
    if not _claimed(session, enrollment):
        return LOST_RACE
    touch.state = "unknown"
    touch.reason = "worker stopped while sending; not resent so the prospect is never mailed twice"
    session.add(touch)
    decisions.record(session, now, "unknown", touch.reason, enrollment=enrollment, touch_id=touch.id)
    lifecycle.enter_step(session, now, enrollment, enrollment.current_step + 1, definition, prospect)
    session.commit()
    return "unknown"


def _repair_position(session: Session, now: datetime, enrollment: Enrollment, definition: dict,
                     prospect: Prospect) -> str:
    if lifecycle.claim(session, enrollment):
        lifecycle.enter_step(session, now, enrollment, enrollment.current_step + 1, definition, prospect)
    session.commit()
    return "repaired"


def choose_variant(step: dict, prospect: Prospect) -> dict:
    """A/B variant by weight, stable per prospect (the same prospect always gets the same one)."""
    variants = step["variants"]
    if len(variants) == 1:
        return variants[0]
    digest = hashlib.sha256(f"{step['id']}:{prospect.email}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * sum(v["weight"] for v in variants)
    for variant in variants:
        point -= variant["weight"]
        if point < 0:
            return variant
    return variants[-1]


def render_touch(ctx: TouchContext, variant: dict, sender: dict[str, Any], thread_subject: str,
                 reply: bool = True) -> dict[str, str]:
    """Subject and body for a touch; raises ``RenderError`` (and nothing else) naming the template,
    the line and what went wrong: a missing variable, a value of the wrong type, a bound reached.

    A step without a subject takes the thread's: "Re: ..." when it replies on the thread, as it is
    when ``reply`` is false (a new thread after an email that may never have arrived)."""
    definition = ctx.definition
    signal = ctx.session.get(Signal, ctx.enrollment.signal_id) if ctx.enrollment.signal_id else None
    context = template_context(ctx.settings, ctx.prospect, ctx.account, signal, sender, definition["name"],
                               ctx.step["id"])
    sources = definition["templates"]
    body = render(sources, variant["template"], context) if variant.get("template") else ""
    if variant.get("subject") is not None:  # one line, whatever the values held: a line break ends a header
        subject = " ".join(render(sources, "=" + str(variant["subject"]), context).split())
    elif thread_subject and not reply:
        subject = thread_subject[3:].strip() if thread_subject.lower().startswith("re:") else thread_subject
    elif thread_subject:
        subject = thread_subject if thread_subject.lower().startswith("re:") else f"Re: {thread_subject}"
    else:
        subject = ""
    html = render(sources, ctx.step["html_template"], context) if ctx.step.get("html_template") else ""
    return {"subject": subject, "text": body, "html": html}


def _plan_email(session: Session, now: datetime, runtime: Runtime, ctx: TouchContext, existing: Touch | None,
                outbox: list[send_batch.PlannedEmail]) -> str:
    """Choose the mailbox and render the email; add it to ``outbox``, or defer or block it."""
    enrollment, prospect, step, definition = ctx.enrollment, ctx.prospect, ctx.step, ctx.definition
    if enrollment.mailbox_id:  # a thread stays with the mailbox that started it
        candidates, fresh = [session.get(mailboxes.Mailbox, enrollment.mailbox_id)], False
    else:
        owner = prospect.owner or definition.get("owner", "")
        key = (tuple(definition.get("mailboxes", ())), owner)
        if key not in ctx.tick.rosters:
            ctx.tick.rosters[key] = mailboxes.Roster(mailboxes.pool(session, definition, owner, fresh=True),
                                                     now.date())
        candidates, fresh = ctx.tick.rosters[key], True
    choice = mailboxes.choose(
        session, now, runtime.settings, candidates, prospect.email.split("@", 1)[1],
        lambda domain: runtime.domain_problem(session, now, domain), fresh=fresh, tally=ctx.tick.tally,
    )
    mailbox = choice.mailbox
    if mailbox is None:
        until = schedule.next_open(choice.retry_at, lifecycle.window_of(definition), prospect.timezone,
                                   prospect.country)
        return _defer(session, now, enrollment, Verdict(
            "defer", "no mailbox can send: " + "; ".join(choice.reasons), until, "mailbox"))
    ctx.mailbox = mailbox
    sender = sender_values(mailbox)
    variant = choose_variant(step, prospect)
    unknown = _unknown_before(session, ctx)
    fresh_start = unknown is not None and definition.get("after_unknown", "new_thread") == "new_thread"
    try:
        rendered = render_touch(ctx, variant, sender, unknown.subject if fresh_start else enrollment.thread_subject,
                                reply=not fresh_start)
    except RenderError as exc:
        return _block(session, now, ctx, existing, str(exc), stop=False, guard="render")
    ctx.tick.tally.count(choice.limits)
    new_thread = bool(step.get("new_thread") or not enrollment.thread_message_id or fresh_start)
    note = ""
    if fresh_start and not step.get("new_thread"):
        note = (f"a new thread: the email of step {unknown.step_index + 1} is unknown (it may never have "
                "arrived), so this one does not reply on it")
    outbox.append(send_batch.PlannedEmail(ctx, existing, mailbox, variant, rendered, new_thread=new_thread,
                                          version=enrollment.version, limits=choice.limits, note=note))
    return "planned"


def _unknown_before(session: Session, ctx: TouchContext) -> Touch | None:
    """The email this one would follow that was recorded "unknown": the thread's first, or, when
    no thread was recorded (a crash mid-send), the enrollment's latest email. None when there is none.

    Read from the touches loaded with the tick when they have it, so the common case costs no query.
    """
    enrollment = ctx.enrollment
    thread = enrollment.thread_message_id
    if not thread and ctx.step["index"] == 0:
        return None
    touches = ctx.tick.touches_of(enrollment.id)
    if touches is None or (thread and not any(t.message_id == thread for t in touches)):
        touches = list(session.exec(select(Touch).where(Touch.enrollment_id == enrollment.id)))
    if thread:
        return next((t for t in touches if t.message_id == thread and t.state == "unknown"), None)
    earlier = sorted((t for t in touches if t.channel == "email" and t.step_index < ctx.step["index"]),
                     key=lambda t: t.step_index)
    return earlier[-1] if earlier and earlier[-1].state == "unknown" else None


def _task(session: Session, now: datetime, ctx: TouchContext, existing: Touch | None) -> str:
    enrollment, prospect, step = ctx.enrollment, ctx.prospect, ctx.step
    owner = prospect.owner or ctx.definition.get("owner", "")
    try:
        rendered = render_touch(ctx, step["variants"][0], {"owner": owner}, enrollment.thread_subject or "")
        # a title is a one-line template like a subject, in the same bounded sandbox
        title = render_touch(ctx, {"subject": step["title"]}, {"owner": owner}, "")["subject"] if step.get(
            "title") else _task_title(step, prospect)
    except RenderError as exc:
        return _block(session, now, ctx, existing, str(exc), stop=False, guard="render")
    if not _claimed(session, enrollment):
        return LOST_RACE
    touch = existing or new_touch(enrollment, step, prospect, now)
    touch.state, touch.subject, touch.sent_at = "queued", rendered["subject"], now
    session.add(touch)
    session.flush()
    task = task_channel.queue(session, touch, owner, step["kind"], title, _task_body(step, rendered), now)
    lifecycle.await_task(session, enrollment)
    decisions.record(session, now, "queued", f"{step['kind']} task #{task.id} for {owner or 'unassigned'}",
                     enrollment=enrollment, touch_id=touch.id, task_id=task.id)
    session.commit()
    return "queued"


def _task_title(step: dict, prospect: Prospect) -> str:
    name = " ".join(part for part in (prospect.first_name, prospect.last_name) if part) or prospect.email
    return {
        "call": f"Call {name}" + (f" ({prospect.phone})" if prospect.phone else ""),
        "linkedin": f"LinkedIn {step.get('action', 'message')}: {name}",
        "manual_email": f"Write to {name} <{prospect.email}>",
    }.get(step["kind"], f"Task: {name}")


def _task_body(step: dict, rendered: dict[str, str]) -> str:
    if step["kind"] == "manual_email":
        return f"Subject: {rendered['subject']}\n\n{rendered['text']}"
    return rendered["text"]


def complete_task(session: Session, now: datetime, task_id: int, outcome: str, note: str = "", *,
                  rules: RuleBook, meeting: BookingIn | None = None, settings: Settings | None = None) -> str:
    """Close a task with a disposition and move its enrollment on; one transaction.

    ``meeting_booked`` is an event for the managers' stop rules (by default: stop). With
    ``meeting`` (its time, AE, length) the meeting is booked too, for the task's prospect
    and enrollment, and the booking applies that rule; a bad one refuses the whole close.
    """
    if meeting is not None and outcome != "meeting_booked":
        raise MeetingError(f"outcome: a meeting can only be booked with the outcome meeting_booked, not {outcome!r}")
    task = task_channel.close(session, now, task_id, outcome, note)
    enrollment = session.get(Enrollment, task.enrollment_id)
    decisions.record(session, now, "task_done", f"{task.kind} task #{task.id}: {outcome}",
                     enrollment=enrollment, touch_id=task.touch_id, outcome=outcome, note=note)
    result = "recorded"
    if meeting is not None:
        prospect = session.get(Prospect, enrollment.prospect_id)
        booked = replace(meeting, prospect_email=prospect.email, source="task", enrollment_id=enrollment.id)
        booking.book(session, now, settings or Settings(), rules, booked)
        result = "stopped" if enrollment.state == "stopped" else "recorded"
    elif outcome == "meeting_booked":
        prospect = session.get(Prospect, enrollment.prospect_id)
        event = Event(name="meeting_booked", summary=f"meeting booked on {task.kind} task #{task.id}",
                      address=prospect.email, enrollment=enrollment)
        _, done = apply_rule(session, now, rules, event)
        result = "stopped" if any(item.startswith("stopped") for item in done) else "recorded"
    elif any(item.startswith("stopped") for item in apply_task_outcome(session, now, rules, task, enrollment)):
        result = "stopped"  # e.g. not_interested: every sequence of the prospect, by the task.OUTCOME rule
    # A reply task works no step of its own (touch_id None): closing it moves no sequence.
    if task.touch_id is not None and enrollment.state == "active" and enrollment.waiting_for == "task" \
            and lifecycle.claim(session, enrollment):
        version = session.get(SequenceVersion, enrollment.sequence_version_id)
        prospect = session.get(Prospect, enrollment.prospect_id)
        lifecycle.enter_step(session, now, enrollment, enrollment.current_step + 1, version.definition, prospect)
        result = "advanced"
    session.commit()
    return result
