"""The engine: find due enrollments and advance each by one step.

``tick`` is the whole scheduler: it processes stored signals, then every active
enrollment whose ``next_due_at`` has passed. It takes a session and a clock and keeps no
state of its own, so the embedded loop, a Celery task and a test all call the same code.

A touch moves claimed -> sending -> sent (or queued, for a person's task); the row is
unique per (enrollment, step) and the claim is a compare-and-set on the enrollment, so a
step happens at most once however many ticks race. A crash between "sending" and "sent"
is found later and recorded as "unknown" rather than sent twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm.util import identity_key
from sqlmodel import Session, select

from channels import tasks as task_channel
from channels.email import DeliveryError
from sequencer.core import decisions
from sequencer.core.clock import Clock
from sequencer.core.config import Settings
from sequencer.core.models import Account, Enrollment, Prospect, SequenceVersion, Touch
from sequencer.engine import enrollments, send_batch
from sequencer.engine.guards import Guard, TouchContext, Verdict, run_guards
from sequencer.engine.window_guard import window_guard
from sequencer.intake import enrolling, signals
from sequencer.rules.actions import Event
from sequencer.rules.actions import apply as apply_rule
from sequencer.rules.book import RuleBook, load_rules
from sequencer.sending import caps, mailboxes
from sequencer.sequences import schedule
from sequencer.sequences.rendering import RenderError, present, render
from suppression.guard import suppression_guard
from suppression.store import find_suppressions
from suppression.tokens import unsubscribe_url

BUILTIN_BOOK = load_rules(None)
MAX_STEPS_PER_TICK = 20
SEND_BATCH = 200  # planned emails claimed, sent and recorded together


@dataclass
class Runtime:
    """What the engine needs from outside: settings, a way to send email, the guards."""

    settings: Settings
    sender: Any  # has send_many(list[OutgoingEmail]) -> each one's DeliveryError or None (SmtpSender)
    guards: list[Guard] = field(default_factory=lambda: [suppression_guard, window_guard])
    domain_problem: Callable[[Session, datetime, str], str] = lambda session, now, domain: ""
    on_delivery_error: Callable[[Session, datetime, Touch, Enrollment, DeliveryError, int], None] | None = None
    rules: RuleBook = field(default_factory=lambda: BUILTIN_BOOK)
    tick_cache: dict[Any, Any] = field(default_factory=dict)  # lookups reused within one tick


@dataclass
class TickReport:
    signals: int = 0
    advanced: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


def tick(session: Session, clock: Clock, runtime: Runtime, limit: int = 1000) -> TickReport:
    """Process pending signals, resume expired pauses, then advance every due enrollment.

    Email touches that pass their guards are planned as the due enrollments are walked
    and sent in batches of ``SEND_BATCH`` (see ``send_batch.send_planned``); every other step
    happens as it is reached.
    """
    report = TickReport()
    runtime.tick_cache.clear()
    pending = signals.unprocessed(session, limit)
    runtime.tick_cache["signals"] = pending  # kept referenced: touches read them back for templates
    keep = runtime.tick_cache.setdefault("rows", [])
    report.signals = len(enrolling.process_batch(session, clock.now(), pending, keep))
    resume_expired_pauses(session, clock.now())
    due = _load_due(session, clock.now(), runtime, limit)
    outbox: list[send_batch.PlannedEmail] = []
    for enrollment in due:
        report.advanced += 1
        # A wait that ends makes the next step due at once; take it in the same tick. A
        # touch ends the enrollment's turn, so two touches never go out in one instant.
        for _ in range(MAX_STEPS_PER_TICK):
            outcome = _advance(session, clock.now(), runtime, enrollment, outbox)
            if outcome not in ("not_due", "planned"):
                report.count(outcome)
            if outcome not in ("waited", "repaired", "unknown"):
                break
        if len(outbox) >= SEND_BATCH:
            for outcome in send_batch.send_planned(session, clock.now(), runtime, outbox):
                report.count(outcome)
            outbox = []
    for outcome in send_batch.send_planned(session, clock.now(), runtime, outbox):
        report.count(outcome)
    return report


def resume_expired_pauses(session: Session, now: datetime) -> int:
    paused = session.exec(
        select(Enrollment).where(Enrollment.state == "paused", Enrollment.paused_until <= now)
    ).all()
    for enrollment in paused:
        if enrollments.claim(session, enrollment):
            prospect = session.get(Prospect, enrollment.prospect_id)
            enrollments.resume(session, now, enrollment, "pause ended", prospect)
    session.commit()
    return len(paused)


def _load_due(session: Session, now: datetime, runtime: Runtime, limit: int) -> list[Enrollment]:
    """The due enrollments, freshly read, with their prospects, accounts and versions.

    One query per kind for the whole batch instead of several per enrollment; the
    touches they already have, their suppression verdicts and their recipient domains' cap
    counters are read too. The loaded rows
    are kept referenced for the tick so the session's identity map (which holds rows
    weakly) answers later lookups without asking the database again. A row another
    worker changes after this read is caught by the compare-and-set in ``claim``.
    """
    due = list(session.exec(
        select(Enrollment)
        .where(Enrollment.state == "active", Enrollment.next_due_at <= now)
        .order_by(Enrollment.next_due_at, Enrollment.id)
        .limit(limit)
        .execution_options(populate_existing=True)
    ).all())
    keep = runtime.tick_cache.setdefault("rows", [])
    keep.extend(due)
    prospects = _by_id(session, Prospect, {e.prospect_id for e in due})
    keep.extend(prospects)
    keep.extend(_by_id(session, Account, {p.account_id for p in prospects if p.account_id}))
    keep.extend(_by_id(session, SequenceVersion, {e.sequence_version_id for e in due}))
    cache = runtime.tick_cache
    cache["touches"] = {(t.enrollment_id, t.step_index): t for t in session.exec(
        select(Touch).where(Touch.enrollment_id.in_([e.id for e in due]))).all()} if due else {}
    cache["suppressed"] = find_suppressions(session, now, [(p.email, p.account_id) for p in prospects])
    cache["tally"] = tally = caps.Tally(session)
    tally.read([cap.key for p in prospects
                for cap in caps.recipient_caps(runtime.settings, p.email.rpartition("@")[2], now)])
    return due


def _by_id(session: Session, model: type, ids: set[int]) -> list:
    """The rows with these ids; those the session holds already (read this tick) are not read again."""
    held = [row for row in (session.identity_map.get(identity_key(model, id_)) for id_ in ids) if row is not None]
    missing = ids - {row.id for row in held}
    if missing:
        held.extend(session.exec(select(model).where(model.id.in_(missing))).all())
    return held


def advance(session: Session, now: datetime, runtime: Runtime, enrollment: Enrollment) -> str:
    """Advance one enrollment by one step if it is still due; return what happened."""
    runtime.tick_cache.clear()
    outbox: list[send_batch.PlannedEmail] = []
    outcome = _advance(session, now, runtime, enrollment, outbox)
    return send_batch.send_planned(session, now, runtime, outbox)[0] if outbox else outcome


def _advance(session: Session, now: datetime, runtime: Runtime, enrollment: Enrollment,
             outbox: list[send_batch.PlannedEmail]) -> str:
    """One step of ``enrollment``; an email that may go is added to ``outbox`` ("planned")."""
    if enrollment.state != "active" or enrollment.next_due_at is None or enrollment.next_due_at > now:
        return "not_due"
    version = session.get(SequenceVersion, enrollment.sequence_version_id)
    definition = version.definition
    prospect = session.get(Prospect, enrollment.prospect_id)
    steps = definition["steps"]
    if enrollment.current_step >= len(steps):
        if enrollments.claim(session, enrollment):
            enrollments.finish(session, now, enrollment)
        session.commit()
        return "finished"
    step = steps[enrollment.current_step]
    if step["kind"] in ("wait", "wait_for_signal"):
        return _end_wait(session, now, enrollment, step, definition, prospect)
    return _touch(session, now, runtime, enrollment, step, definition, prospect, outbox)


def _end_wait(session: Session, now: datetime, enrollment: Enrollment, step: dict, definition: dict,
              prospect: Prospect) -> str:
    if not enrollments.claim(session, enrollment):
        session.rollback()
        return "lost_race"
    if step["kind"] == "wait_for_signal" and enrollment.waiting_for:
        decisions.record(session, now, "timed_out", f"no {step['signal']!r} signal before the timeout",
                         enrollment=enrollment)
    enrollments.enter_step(session, now, enrollment, enrollment.current_step + 1, definition, prospect)
    session.commit()
    return "waited"


def _touch(session: Session, now: datetime, runtime: Runtime, enrollment: Enrollment, step: dict,
           definition: dict, prospect: Prospect, outbox: list[send_batch.PlannedEmail]) -> str:
    account = session.get(Account, prospect.account_id) if prospect.account_id else None
    known = runtime.tick_cache.get("touches")  # read with the due enrollments this tick
    if known is not None:
        existing = known.get((enrollment.id, step["index"]))
    else:
        existing = session.exec(
            select(Touch).where(Touch.enrollment_id == enrollment.id, Touch.step_index == step["index"])
        ).first()
    if existing is not None and existing.state in ("sending", "claimed"):
        return _recover_unknown(session, now, enrollment, existing, definition, prospect)
    if existing is not None and existing.state in ("sent", "queued", "skipped"):
        return _repair_position(session, now, enrollment, definition, prospect)
    ctx = TouchContext(session=session, now=now, settings=runtime.settings, enrollment=enrollment,
                       prospect=prospect, account=account, step=step, channel=step["kind"],
                       extra={"definition": definition}, cache=runtime.tick_cache)
    verdict = run_guards(runtime.guards, ctx)
    if verdict.action == "defer":
        return _defer(session, now, enrollment, verdict)
    if verdict.action == "block":
        return _block(session, now, enrollment, step, prospect, existing, verdict.reason, stop=True,
                      guard=verdict.guard)
    if step["kind"] == "email":
        return _plan_email(session, now, runtime, ctx, existing, outbox)
    return _task(session, now, ctx, existing)


def _defer(session: Session, now: datetime, enrollment: Enrollment, verdict: Verdict) -> str:
    if not enrollments.claim(session, enrollment):
        session.rollback()
        return "lost_race"
    send_batch.record_deferral(session, now, enrollment, verdict)
    session.commit()
    return "deferred"


def _block(session: Session, now: datetime, enrollment: Enrollment, step: dict, prospect: Prospect,
           existing: Touch | None, reason: str, *, stop: bool, guard: str) -> str:
    """Record a blocked touch; stop the enrollment, or pause it for a person to fix."""
    if not enrollments.claim(session, enrollment):
        session.rollback()
        return "lost_race"
    touch = existing or _new_touch(enrollment, step, prospect, now)
    touch.state = "blocked"
    touch.reason = reason
    session.add(touch)
    session.flush()
    decisions.record(session, now, "blocked", reason, enrollment=enrollment, touch_id=touch.id, guard=guard)
    if stop:
        enrollments.stop(session, now, enrollment, f"blocked: {reason}", rule=guard)
    else:
        enrollments.pause(session, now, enrollment, f"needs attention: {reason}")
    session.commit()
    return "blocked"


def _new_touch(enrollment: Enrollment, step: dict, prospect: Prospect, now: datetime) -> Touch:
    return Touch(enrollment_id=enrollment.id, prospect_id=prospect.id, step_index=step["index"],
                 step_id=step["id"], channel=step["kind"], recipient=prospect.email, created_at=now)


def _recover_unknown(session: Session, now: datetime, enrollment: Enrollment, touch: Touch, definition: dict,
                     prospect: Prospect) -> str:
    """A touch left "sending" by a crash: never resend (at most once); record and move on."""
    if not enrollments.claim(session, enrollment):
        session.rollback()
        return "lost_race"
    touch.state = "unknown"
    touch.reason = "worker stopped while sending; not resent so the prospect is never mailed twice"
    session.add(touch)
    decisions.record(session, now, "unknown", touch.reason, enrollment=enrollment, touch_id=touch.id)
    enrollments.enter_step(session, now, enrollment, enrollment.current_step + 1, definition, prospect)
    session.commit()
    return "unknown"


def _repair_position(session: Session, now: datetime, enrollment: Enrollment, definition: dict,
                     prospect: Prospect) -> str:
    if enrollments.claim(session, enrollment):
        enrollments.enter_step(session, now, enrollment, enrollment.current_step + 1, definition, prospect)
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


def render_touch(ctx: TouchContext, variant: dict, sender: dict[str, Any], thread_subject: str) -> dict[str, str]:
    """Subject and body for a touch; raises ``RenderError`` naming a missing variable."""
    definition = ctx.extra["definition"]
    base = enrollments.context_of(ctx.prospect, ctx.account, None)
    signal = ctx.extra.get("signal_context") or {}
    context = {
        "prospect": present(base["prospect"]), "account": present(base["account"]), "signal": present(signal),
        "sender": present(sender), "sequence": {"name": definition["name"]}, "step": {"id": ctx.step["id"]},
        "unsubscribe_url": unsubscribe_url(ctx.settings, ctx.prospect.email),
    }
    sources = definition["templates"]
    body = render(sources, variant["template"], context) if variant.get("template") else ""
    if variant.get("subject") is not None:  # one line, whatever the values held: a line break ends a header
        subject = " ".join(render(sources, "=" + str(variant["subject"]), context).split())
    elif thread_subject:
        subject = thread_subject if thread_subject.lower().startswith("re:") else f"Re: {thread_subject}"
    else:
        subject = ""
    html = render(sources, ctx.step["html_template"], context) if ctx.step.get("html_template") else ""
    return {"subject": subject, "text": body, "html": html}


def _signal_context(session: Session, enrollment: Enrollment) -> dict[str, Any]:
    if enrollment.signal_id is None:
        return {}
    from sequencer.core.models import Signal

    signal = session.get(Signal, enrollment.signal_id)
    return {"type": signal.type, **(signal.payload or {})} if signal else {}


def _plan_email(session: Session, now: datetime, runtime: Runtime, ctx: TouchContext, existing: Touch | None,
                outbox: list[send_batch.PlannedEmail]) -> str:
    """Choose the mailbox and render the email; add it to ``outbox``, or defer or block it."""
    enrollment, prospect, step = ctx.enrollment, ctx.prospect, ctx.step
    definition = ctx.extra["definition"]
    recipient_domain = prospect.email.split("@", 1)[1]
    if enrollment.mailbox_id:
        candidates, fresh = [session.get(mailboxes.Mailbox, enrollment.mailbox_id)], False
    else:
        owner = prospect.owner or definition.get("owner", "")
        key = ("pool", tuple(definition.get("mailboxes", ())), owner)
        if key not in runtime.tick_cache:  # read once a tick, fresh: a pause counts from the next tick
            runtime.tick_cache[key] = mailboxes.Roster(mailboxes.pool(session, definition, owner, fresh=True),
                                                       now.date())
        candidates, fresh = runtime.tick_cache[key], True
    tally = runtime.tick_cache.setdefault("tally", caps.Tally(session))
    choice = mailboxes.choose(
        session, now, runtime.settings, candidates, recipient_domain,
        lambda domain: runtime.domain_problem(session, now, domain), fresh=fresh, tally=tally,
    )
    mailbox = choice.mailbox
    if mailbox is None:
        window = enrollments.window_of(definition)
        until = schedule.next_open(choice.retry_at, window, prospect.timezone, prospect.country)
        return _defer(session, now, enrollment, Verdict(
            "defer", "no mailbox can send: " + "; ".join(choice.reasons), until, "mailbox"))
    ctx.mailbox = mailbox
    ctx.extra["signal_context"] = _signal_context(session, enrollment)
    sender = {"name": mailbox.display_name, "email": mailbox.address, "owner": mailbox.owner}
    variant = choose_variant(step, prospect)
    try:
        rendered = render_touch(ctx, variant, sender, enrollment.thread_subject)
    except RenderError as exc:
        return _block(session, now, enrollment, step, prospect, existing, str(exc), stop=False, guard="render")
    tally.count(choice.limits)
    outbox.append(send_batch.PlannedEmail(ctx, existing, mailbox, variant, rendered,
                               new_thread=bool(step.get("new_thread") or not enrollment.thread_message_id),
                               version=enrollment.version, limits=choice.limits))
    return "planned"


def _task(session: Session, now: datetime, ctx: TouchContext, existing: Touch | None) -> str:
    enrollment, prospect, step = ctx.enrollment, ctx.prospect, ctx.step
    definition = ctx.extra["definition"]
    ctx.extra["signal_context"] = _signal_context(session, enrollment)
    owner = prospect.owner or definition.get("owner", "")
    variant = step["variants"][0]
    try:
        rendered = render_touch(ctx, variant, {"owner": owner}, enrollment.thread_subject or "")
    except RenderError as exc:
        return _block(session, now, enrollment, step, prospect, existing, str(exc), stop=False, guard="render")
    if not enrollments.claim(session, enrollment):
        session.rollback()
        return "lost_race"
    touch = existing or _new_touch(enrollment, step, prospect, now)
    touch.state, touch.subject, touch.sent_at = "queued", rendered["subject"], now
    session.add(touch)
    session.flush()
    title = step.get("title") or _task_title(step, prospect)
    task = task_channel.queue(session, touch, owner, step["kind"], title, _task_body(step, rendered), now)
    enrollment.waiting_for = "task"
    enrollment.next_due_at = None
    session.add(enrollment)
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


def complete_task(session: Session, now: datetime, task_id: int, outcome: str, note: str = "",
                  rules: RuleBook | None = None) -> str:
    """Close a task with a disposition and move its enrollment on; one transaction.

    ``meeting_booked`` is an event for the managers' stop rules (by default: stop).
    """
    task = task_channel.close(session, now, task_id, outcome, note)
    enrollment = session.get(Enrollment, task.enrollment_id)
    decisions.record(session, now, "task_done", f"{task.kind} task #{task.id}: {outcome}",
                     enrollment=enrollment, touch_id=task.touch_id, outcome=outcome, note=note)
    result = "recorded"
    if outcome == "meeting_booked":
        prospect = session.get(Prospect, enrollment.prospect_id)
        event = Event(name="meeting_booked", summary=f"meeting booked on {task.kind} task #{task.id}",
                      address=prospect.email, enrollment=enrollment)
        _, done = apply_rule(session, now, rules or BUILTIN_BOOK, event)
        result = "stopped" if any(item.startswith("stopped") for item in done) else "recorded"
    if enrollment.state == "active" and enrollment.waiting_for == "task" and enrollments.claim(session, enrollment):
        version = session.get(SequenceVersion, enrollment.sequence_version_id)
        prospect = session.get(Prospect, enrollment.prospect_id)
        enrollments.enter_step(session, now, enrollment, enrollment.current_step + 1, version.definition, prospect)
        result = "advanced"
    session.commit()
    return result
