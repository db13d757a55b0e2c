"""Apply a manager's stop rule to an event: stop, stop the account, pause, suppress, ...

The rules file says *what* to do (``sequencer.rules.book``); this module does it, in
the caller's transaction, and records each step in the decision log under the rule's
name so ``sequencer explain`` can say which rule fired.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path

from sqlmodel import Session, or_, select

from channels import tasks as task_channel
from sequencer.core import decisions
from sequencer.core.config import Settings
from sequencer.core.models import (
    Account,
    CapCounter,
    Decision,
    Enrollment,
    Mailbox,
    Prospect,
    SequenceVersion,
    Touch,
)
from sequencer.enrollments import lifecycle
from sequencer.intake.freemail import is_freemail
from sequencer.rules.book import (
    Action,
    Enroll,
    Ignore,
    PauseMailboxAfter,
    PauseUntilReturn,
    ResolvedRule,
    Retry,
    RuleBook,
    Stop,
    StopAccount,
    StopProspect,
    Suppress,
)
from sequencer.rules.parse import load_rules
from sequencer.sequences import schedule
from suppression.normalize import domain_of, is_public_suffix, normalize_email, registrable_domain
from suppression.store import find_suppression, make_spec, stage_entry


@dataclass
class Event:
    """Something that happened to an enrollment (or just to an address)."""

    name: str  # a stop-rules event: reply, out_of_office, bounce, ...
    summary: str  # for people: 'reply "Re: Hello" from dana@x.com'
    address: str = ""  # the person it is about (suppressed by a suppress action)
    sender_domain: str = ""
    sentiment: str | None = None
    bounce_type: str | None = None
    bounce_reason: str | None = None  # the taxonomy's reason (sequencer.inbound.reasons): bounce.mailbox_full rules
    return_date: date | None = None
    new_contacts: list[str] = field(default_factory=list)
    touch: Touch | None = None
    enrollment: Enrollment | None = None
    detail: dict = field(default_factory=dict)
    text: str = ""  # a reply's own words (the sender's text), for the SDR's task
    answer: bool = True  # a reply: queue its "answer it" task (once per reply, not per enrollment it meets)
    # How sure we are the event is about ``enrollment``: "strong" for the engine's own events
    # (a refusal at send time, a task a person closed) and for inbound mail that names our
    # Message-ID or a signed return path; "weak" (sender + subject) or "" (no match) otherwise.
    strength: str = "strong"


@lru_cache(maxsize=8)
def _load(path: str | None) -> RuleBook:
    return load_rules(Path(path) if path else None)


def rulebook(settings: Settings) -> RuleBook:
    """The rules in force: the configured file (validated as a whole) or the built-ins."""
    return _load(str(settings.rules_file) if settings.rules_file else None)


def apply(session: Session, now: datetime, rules: RuleBook, event: Event) -> tuple[ResolvedRule, list[str]]:
    """Carry out the rule for ``event``; return it and what was done (does not commit)."""
    rule = _rule_for(rules, event)
    done: list[str] = []
    for action in rule.actions:
        if isinstance(action, Retry):
            if _retry(session, now, rule, action, event, done):
                break  # the later actions apply only once the attempts are used up
            continue
        done.extend(_do(session, now, rule, action, event))
    if event.name == "reply" and event.answer and event.enrollment is not None:
        done.append(_reply_task(session, now, event))
    if not done:
        decisions.record(session, now, "inbound", f"{event.summary}: nothing to do", enrollment=event.enrollment,
                         prospect_id=_prospect_id(session, event), rule=rule.name)
    return rule, done


def withhold(session: Session, now: datetime, rules: RuleBook, event: Event, why: str) -> ResolvedRule:
    """Record that ``event`` was not acted on, and why; return the rule it would have met (does not commit)."""
    rule = _rule_for(rules, event)
    decisions.record(session, now, "not_acted", f"{event.summary}: {why}: not acted on (rule {rule.name} not applied)",
                     enrollment=event.enrollment, prospect_id=_prospect_id(session, event),
                     touch_id=event.touch.id if event.touch else None)
    return rule


def resolve(rules: RuleBook, event: Event) -> ResolvedRule:
    """The rule ``event`` meets (nothing is done)."""
    return _rule_for(rules, event)


def _rule_for(rules: RuleBook, event: Event) -> ResolvedRule:
    sequence = event.enrollment.sequence_name if event.enrollment else None
    return rules.actions_for(event.name, sequence, sentiment=event.sentiment,
                             bounce_type=event.bounce_type if event.name == "bounce" else None,
                             bounce_reason=event.bounce_reason if event.name == "bounce" else None)


def _prospect_id(session: Session, event: Event) -> int | None:
    if event.enrollment:
        return event.enrollment.prospect_id
    if event.address:
        return session.exec(select(Prospect.id).where(Prospect.email == event.address)).first()
    return None


def _do(session: Session, now: datetime, rule: ResolvedRule, action: Action, event: Event) -> list[str]:
    if isinstance(action, Ignore):
        decisions.record(session, now, "ignored", event.summary, enrollment=event.enrollment, rule=rule.name,
                         prospect_id=_prospect_id(session, event))
        return ["ignored"]
    if isinstance(action, Stop):
        return _stop(session, now, rule, event.enrollment, event.summary, event)
    if isinstance(action, StopProspect):
        return _stop_prospect(session, now, rule, event)
    if isinstance(action, StopAccount):
        return _stop_account(session, now, rule, event)
    if isinstance(action, PauseUntilReturn):
        return _pause_until_return(session, now, rule, action, event)
    if isinstance(action, Suppress):
        return _suppress(session, now, rule, action, event)
    if isinstance(action, PauseMailboxAfter):
        return _count_block(session, now, rule, action, event)
    if isinstance(action, Enroll):
        return _enroll(session, now, rule, action, event)
    raise ValueError(f"no handler for action {action}")


def _stop(session: Session, now: datetime, rule: ResolvedRule, enrollment: Enrollment | None, reason: str,
          event: Event) -> list[str]:
    if enrollment is None or enrollment.state not in lifecycle.ACTIVE_STATES:
        return []
    if not lifecycle.claim(session, enrollment):
        session.refresh(enrollment)
        if enrollment.state not in lifecycle.ACTIVE_STATES or not lifecycle.claim(session, enrollment):
            return []
    # the event's detail goes to the decision log; a key named like stop's own arguments is renamed, not lost
    detail = {f"event_{key}" if key in ("reason", "rule") else key: value for key, value in event.detail.items()}
    lifecycle.stop(session, now, enrollment, reason, rule=rule.name, **detail)
    return [f"stopped enrollment #{enrollment.id} ({enrollment.sequence_name})"]


def _stop_prospect(session: Session, now: datetime, rule: ResolvedRule, event: Event) -> list[str]:
    """Stop every running enrollment of the event's prospect, in every sequence.

    The prospect is the one of the event's own enrollment (a meeting, a task, a matched
    reply); an event without one stops nothing here, since an address out of a header names
    no one we may act on.
    """
    if event.enrollment is None:
        return []
    running = session.exec(
        select(Enrollment).where(Enrollment.prospect_id == event.enrollment.prospect_id,
                                 Enrollment.state.in_(lifecycle.ACTIVE_STATES)).order_by(Enrollment.id)
    ).all()
    done = []
    for enrollment in running:
        reason = event.summary if enrollment.id == event.enrollment.id else \
            f"{event.summary} (in {event.enrollment.sequence_name})"
        done += _stop(session, now, rule, enrollment, reason, event)
    return done


def _stop_account(session: Session, now: datetime, rule: ResolvedRule, event: Event) -> list[str]:
    """Stop every enrollment at the matched prospect's organisation (its registrable domain).

    Trusted: the prospect of the enrollment the event is strongly tied to, whose address we
    validated when we stored it. Not trusted: the From header (anyone can write any domain
    there, ``x@%`` included), a weak match (sender + subject, both forgeable), a public suffix
    (``co.uk`` is a country, not a company) or a freemail domain. In those cases only the
    event's own enrollment stops, or, when the match is strong (a free-mail address),
    every enrollment of that prospect.
    """
    org, why = _organisation(session, event)
    if org is None:
        if event.enrollment is not None and why:
            decisions.record(session, now, "account_not_stopped", f"{event.summary}: {why}",
                             enrollment=event.enrollment, rule=rule.name)
        if event.strength == "strong":
            return _stop_prospect(session, now, rule, event)
        return _stop(session, now, rule, event.enrollment, event.summary, event)
    accounts = session.exec(
        # autoescape: a % or _ in the value is matched literally, never as a LIKE wildcard
        select(Account.id).where(or_(Account.domain == org, Account.domain.endswith(f".{org}", autoescape=True)))
    ).all()
    if not accounts:
        return _stop(session, now, rule, event.enrollment, event.summary, event)
    active = session.exec(
        select(Enrollment).join(Prospect, Prospect.id == Enrollment.prospect_id)
        .where(Prospect.account_id.in_(accounts), Enrollment.state.in_(lifecycle.ACTIVE_STATES))
    ).all()
    done = []
    for enrollment in active:
        reason = event.summary if enrollment is event.enrollment else f"colleague at {org}: {event.summary}"
        done += _stop(session, now, rule, enrollment, reason, event)
    return done


def _organisation(session: Session, event: Event) -> tuple[str | None, str]:
    """The registrable domain whose account ``event`` may stop, or None and why not."""
    if event.enrollment is None:
        return None, ""
    if event.strength != "strong":
        return None, "matched only by sender and subject: stopping this enrollment, not the account"
    prospect = session.get(Prospect, event.enrollment.prospect_id)
    try:
        org = registrable_domain(domain_of(normalize_email(prospect.email)))
    except (ValueError, AttributeError):
        return None, f"prospect address {getattr(prospect, 'email', '')!r} has no valid domain"
    if "." not in org or is_public_suffix(org):
        return None, f"{org} is a public suffix, not one organisation"
    if is_freemail(org):  # gmail.com users are not colleagues
        return None, ""
    return org, ""


def _pause_until_return(session: Session, now: datetime, rule: ResolvedRule, action: PauseUntilReturn,
                        event: Event) -> list[str]:
    enrollment = event.enrollment
    if enrollment is None or enrollment.state != "active" or not lifecycle.claim(session, enrollment):
        return []
    prospect = session.get(Prospect, enrollment.prospect_id)
    version = session.get(SequenceVersion, enrollment.sequence_version_id)
    window = lifecycle.window_of(version.definition)
    if event.return_date is not None:
        back = datetime.combine(event.return_date, window.start, schedule.zone(prospect.timezone))
        until = schedule.add_business_days(back, action.plus_business_days, window, prospect.timezone,
                                           prospect.country)
        why = f"out of office until {event.return_date:%Y-%m-%d} (+{action.plus_business_days} business day)"
    else:
        until = now + timedelta(days=action.default_days)
        why = f"out of office, no return date given: pausing {action.default_days} days"
    lifecycle.pause(session, now, enrollment, why, until=max(until, now), rule=rule.name)
    return [f"paused enrollment #{enrollment.id} until {until:%Y-%m-%d %H:%M} UTC"]


def _suppress(session: Session, now: datetime, rule: ResolvedRule, action: Suppress, event: Event) -> list[str]:
    if not event.address:
        return []
    expires = now + timedelta(days=action.expires_after_days) if action.expires_after_days else None
    try:
        spec = make_spec(event.address, kind="email", reason=action.reason, expires_at=expires,
                         note=event.summary[:200])
    except ValueError as exc:  # an address out of a header, not one we validated: say so, suppress nothing
        decisions.record(session, now, "not_suppressed", f"{event.summary}: {exc}", rule=rule.name,
                         enrollment=event.enrollment)
        return []
    entry, change = stage_entry(session, now, spec, added_by=f"rule {rule.name}")
    decisions.record(session, now, "suppressed", f"{entry.value}: {entry.reason} ({change})", rule=rule.name,
                     enrollment=event.enrollment, prospect_id=_prospect_id(session, event))
    return [f"suppressed {entry.value} ({entry.reason}, {change})"]


def _count_block(session: Session, now: datetime, rule: ResolvedRule, action: PauseMailboxAfter,
                 event: Event) -> list[str]:
    """Count a block bounce against the sending mailbox; pause it once it has ``blocks``."""
    if event.touch is None or event.touch.mailbox_id is None:
        return []
    mailbox = session.get(Mailbox, event.touch.mailbox_id)
    key = f"blocks:mailbox:{mailbox.id}"
    counter = session.get(CapCounter, key) or CapCounter(key=key, used=0)
    counter.used += 1
    session.add(counter)
    decisions.record(session, now, "block_counted", f"{mailbox.address}: {counter.used} block bounce(s) "
                     f"of {action.blocks} allowed; {event.summary}", enrollment=event.enrollment, rule=rule.name)
    if counter.used >= action.blocks and not mailbox.paused:
        mailbox.paused = True
        mailbox.pause_reason = f"{counter.used} block bounces (rule {rule.name})"
        session.add(mailbox)
        return [f"paused mailbox {mailbox.address} after {counter.used} block bounces"]
    return [f"counted block bounce {counter.used}/{action.blocks} for {mailbox.address}"]


def _retry(session: Session, now: datetime, rule: ResolvedRule, action: Retry, event: Event,
           done: list[str]) -> bool:
    """Send the bounced step again after a back-off; False once the attempts are used up.

    ``max_attempts`` counts deliveries, the first one included: with 3, the step is sent
    at most three times and the third soft bounce gives up. This is the only retry policy
    for refusals, whether the refusal came at send time or later as a bounce message.
    """
    touch, enrollment = event.touch, event.enrollment
    if touch is None or enrollment is None or enrollment.state not in lifecycle.ACTIVE_STATES:
        return False
    bounces = retries_of(session, touch) + 1
    if bounces >= action.max_attempts:
        decisions.record(session, now, "retry_exhausted", f"{bounces} soft bounce(s) in {action.max_attempts} "
                         "attempt(s): giving up", enrollment=enrollment, rule=rule.name, touch_id=touch.id)
        return False
    if not lifecycle.claim(session, enrollment):
        return False
    touch.state, touch.reason = "retry", f"soft bounce: {event.summary}"
    session.add(touch)
    at = now + timedelta(hours=action.backoff_hours)
    lifecycle.resend_step(session, enrollment, touch.step_index, at,
                          forget_thread=enrollment.thread_message_id == touch.message_id)
    decisions.record(session, now, "retry", f"soft bounce {bounces}: resend step {touch.step_index + 1} at "
                     f"{at:%Y-%m-%d %H:%M} UTC, after {action.backoff_hours:g} h (attempt {bounces + 1} of "
                     f"{action.max_attempts})", enrollment=enrollment, rule=rule.name, step_index=touch.step_index,
                     touch_id=touch.id, until=at.isoformat())
    done.append(f"retry touch #{touch.id} (attempt {bounces + 1} of {action.max_attempts})")
    return True


def retries_of(session: Session, touch: Touch) -> int:
    """How many times the stop rules already sent this touch again after a soft bounce."""
    return len(session.exec(
        select(Decision.id).where(Decision.touch_id == touch.id, Decision.kind == "retry", Decision.rule != "")
    ).all())


def _enroll(session: Session, now: datetime, rule: ResolvedRule, action: Enroll, event: Event) -> list[str]:
    from sequencer.intake.prospects import upsert_prospect
    from sequencer.sequences.versions import current_version

    version = current_version(session, action.sequence)
    if version is None:
        decisions.record(session, now, "not_enrolled", f"rule names unknown sequence {action.sequence!r}",
                         rule=rule.name, enrollment=event.enrollment)
        return []
    done = []
    owner = ""
    if event.enrollment is not None:
        owner = session.get(Prospect, event.enrollment.prospect_id).owner
    for address in event.new_contacts:
        try:
            prospect = upsert_prospect(session, now, address, {"owner": owner, "referred_by": event.address})
        except ValueError:
            continue
        why = lifecycle.enroll_blocks(session, now, prospect.id, version)
        entry = find_suppression(session, now, prospect.email, prospect.account_id)
        if why or entry is not None:
            reason = why or f"suppressed: {entry.reason}"
            decisions.record(session, now, "not_enrolled", reason, prospect_id=prospect.id, rule=rule.name)
            continue
        enrollment = lifecycle.create(session, now, prospect, version, None)
        decisions.record(session, now, "referred", f"{event.summary}", enrollment=enrollment, rule=rule.name)
        done.append(f"enrolled {prospect.email} into {version.name}")
    return done


REPLY_TEXT_LIMIT = 4000  # characters of a reply copied into its task: enough to read, bounded for the queue


def _reply_task(session: Session, now: datetime, event: Event) -> str:
    """Queue "answer it" for the owning SDR, with the reply's text, so no reply is left unread.

    The text is the sender's, untrusted: it is stored as data (bounded), never rendered
    as a template. The task has no step of its own; closing it does not move a sequence.
    """
    enrollment = event.enrollment
    prospect = session.get(Prospect, enrollment.prospect_id)
    version = session.get(SequenceVersion, enrollment.sequence_version_id)
    owner = prospect.owner or (version.definition.get("owner", "") if version else "")
    name = " ".join(part for part in (prospect.first_name, prospect.last_name) if part) or prospect.email
    words = " ".join(event.text.split())
    gist = words[:80] + ("..." if len(words) > 80 else "")
    mood = f" ({event.sentiment})" if event.sentiment else ""
    title = f"Reply from {name}{mood}: {gist or event.summary[:80]} - answer it"
    body = (f"From: {event.address}\nSequence: {enrollment.sequence_name}\n{event.summary}\n\n"
            f"{event.text[:REPLY_TEXT_LIMIT]}" + ("\n[... cut]" if len(event.text) > REPLY_TEXT_LIMIT else ""))
    task = task_channel.Task(enrollment_id=enrollment.id, prospect_id=prospect.id, owner=owner, kind="reply",
                             title=title[:300], body=body, due_at=now)
    session.add(task)
    session.flush()
    decisions.record(session, now, "queued", f"reply task #{task.id} for {owner or 'unassigned'}: answer it",
                     enrollment=enrollment, task_id=task.id)
    return f"queued reply task #{task.id} for {owner or 'unassigned'}"

