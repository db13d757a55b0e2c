"""``rules explain``: what the stop rules would do for an event, step by step, changing nothing.

The rule is resolved by the same ``RuleBook.actions_for`` the engine uses, and a dry run
against a real prospect calls the same ``actions.apply`` in a transaction that is rolled
back, so the explanation cannot drift from what the engine does.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime

from sqlmodel import Session, select

from sequencer.core.models import Enrollment, Prospect, Touch
from sequencer.enrollments import lifecycle
from sequencer.rules.actions import Event, apply
from sequencer.rules.book import BOUNCE_REASONS, EVENTS, Action, ResolvedRule, RuleBook

MEANING = {
    "stop": "stop this enrollment",
    "stop_prospect": "stop every active or paused enrollment of the prospect, in every sequence",
    "stop_account": "stop every enrollment at the prospect's organisation (same registrable domain); for a "
                    "free-mail address or a weak match, the prospect's own",
    "pause_until_return": "pause until the out-of-office return date + {plus_business_days} business day(s), or "
                          "{default_days} day(s) when no date is given",
    "suppress": "suppress the address ({reason}){expiry}: no sequence may contact it",
    "pause_mailbox_after": "count a block bounce against the sending mailbox; pause the mailbox at {blocks}",
    "retry": "send the step again after {backoff_hours:g} h, at most {max_attempts} sends in all; the actions "
             "below apply only once the attempts are used up",
    "enroll": "enroll the new contacts the message names (a referral) into {sequence}",
    "ignore": "do nothing (recorded on the timeline)",
}


def parse_event(text: str) -> tuple[str, dict[str, str]]:
    """``reply.positive`` -> ("reply", {"sentiment": "positive"}); raise ValueError naming what is known."""
    event, _, qualifier = text.strip().partition(".")
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r} (known: {', '.join(EVENTS)})")
    if qualifier and qualifier not in EVENTS[event]:
        raise ValueError(f"unknown {event} qualifier {qualifier!r} (known: {', '.join(EVENTS[event]) or 'none'})")
    if event == "reply" and qualifier:
        return event, {"sentiment": qualifier}
    if event == "bounce" and qualifier in ("hard", "soft", "block"):
        return event, {"bounce_type": qualifier}
    if event == "bounce" and qualifier:
        return event, {"bounce_type": BOUNCE_REASONS[qualifier], "bounce_reason": qualifier}
    return (f"{event}.{qualifier}" if qualifier else event), {}


def resolve(rules: RuleBook, text: str, sequence: str | None) -> ResolvedRule:
    name, kwargs = parse_event(text)
    return rules.actions_for(name, sequence, **kwargs)


def describe(action: Action) -> str:
    values = {field.name: getattr(action, field.name) for field in fields(action)}
    if action.name == "suppress":
        days = values.get("expires_after_days")
        values["expiry"] = f", for {days} days" if days else ", for good"
    return f"{action.name}: " + MEANING[action.name].format(**values)


def simulate(session: Session, now: datetime, rules: RuleBook, text: str, email: str,
             sequence: str | None) -> tuple[Enrollment | None, list[str]]:
    """Apply the rule to ``email``'s running enrollment (in ``sequence`` if given), then roll back."""
    prospect = session.exec(select(Prospect).where(Prospect.email == email.strip().lower())).first()
    if prospect is None:
        raise ValueError(f"no prospect {email}")
    query = select(Enrollment).where(Enrollment.prospect_id == prospect.id,
                                     Enrollment.state.in_(lifecycle.ACTIVE_STATES))
    if sequence:
        query = query.where(Enrollment.sequence_name == sequence)
    enrollment = session.exec(query.order_by(Enrollment.id.desc())).first()
    name, kwargs = parse_event(text)
    touch = session.exec(select(Touch).where(Touch.enrollment_id == enrollment.id, Touch.state == "sent")
                         .order_by(Touch.id.desc())).first() if enrollment else None
    event = Event(name=name, summary=f"dry run: {text}", address=prospect.email, enrollment=enrollment,
                  touch=touch, sentiment=kwargs.get("sentiment"), bounce_type=kwargs.get("bounce_type"),
                  bounce_reason=kwargs.get("bounce_reason"), answer=False)
    try:
        _, done = apply(session, now, rules, event)
    finally:
        session.rollback()  # a dry run: nothing it did is kept
    return enrollment, done
