"""Events that reach the stop rules from a person or a tool, not from mail: a task an SDR closed
with an outcome, and a ``reply`` or ``meeting_booked`` signal (a CRM, another booking tool).

Each becomes an ``actions.Event`` and meets the same rules through ``actions.apply``, in the
caller's transaction, so a call closed as "not interested" stops sequences exactly as a
negative reply does.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from channels import tasks as task_channel
from sequencer.core.models import Enrollment, Prospect, Signal
from sequencer.enrollments import lifecycle
from sequencer.intake.enrolling import Reaction
from sequencer.rules.actions import REPLY_TEXT_LIMIT, Event, apply, resolve
from sequencer.rules.book import Ignore, RuleBook


def apply_task_outcome(session: Session, now: datetime, rules: RuleBook, task: task_channel.Task,
                       enrollment: Enrollment) -> list[str]:
    """A task closed with an outcome is the ``task.OUTCOME`` event for the stop rules.

    A rule that only ignores it (the built-in for most outcomes) records nothing more than
    the task's own close: the sequence simply moves on.
    """
    prospect = session.get(Prospect, enrollment.prospect_id)
    event = Event(name=f"task.{task.outcome}", summary=f"{task.kind} task #{task.id}: {task.outcome}",
                  address=prospect.email, enrollment=enrollment, detail={"task_id": task.id})
    if all(isinstance(action, Ignore) for action in resolve(rules, event).actions):
        return []
    return apply(session, now, rules, event)[1]


# Signal types that are events for the stop rules as well as triggers: a reply logged by a CRM or a
# meeting booked in another tool stops sequences as if it had come through us.
SIGNAL_EVENTS = {"reply": "reply", "meeting_booked": "meeting_booked"}


def react_to_signal(session: Session, now: datetime, rules: RuleBook, signal: Signal,
                    prospects: list[Prospect]) -> list[str]:
    """Apply the stop rule for a ``reply`` or ``meeting_booked`` signal to each running enrollment
    of its prospect (an account-level one names no person and stops nothing); the caller commits.

    Trusted: the signal was stored through intake (an authenticated API, the CLI, a file the
    team imports), so it is as strong as a task an SDR closed. A reply's ``sentiment`` is used
    only when it is one of the known three.
    """
    name = SIGNAL_EVENTS.get(signal.type)
    if name is None or not signal.email:
        return []
    sentiment = (signal.payload or {}).get("sentiment") if name == "reply" else None
    sentiment = sentiment if sentiment in ("positive", "negative", "neutral") else None
    done: list[str] = []
    for prospect in prospects:
        running = session.exec(select(Enrollment).where(
            Enrollment.prospect_id == prospect.id, Enrollment.state.in_(lifecycle.ACTIVE_STATES),
            Enrollment.signal_id.is_distinct_from(signal.id)).order_by(Enrollment.id)).all()
        for index, enrollment in enumerate(running):
            if enrollment.state not in lifecycle.ACTIVE_STATES:  # stopped by the rule applied to a sibling
                continue
            event = Event(name=name, summary=f"{signal.type} signal #{signal.id} ({signal.source or 'signal'})",
                          address=prospect.email, sentiment=sentiment, enrollment=enrollment,
                          text=str((signal.payload or {}).get("text", ""))[:REPLY_TEXT_LIMIT],
                          answer=index == 0, detail={"signal_id": signal.id})
            done += apply(session, now, rules, event)[1]
    return done


def signal_reaction(rules: RuleBook) -> Reaction:
    """The hook ``intake.enrolling`` runs for each processed signal, in its transaction."""

    def react(session: Session, now: datetime, signal: Signal, prospects: list[Prospect]) -> None:
        react_to_signal(session, now, rules, signal, prospects)

    return react
