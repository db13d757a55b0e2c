"""``sequences preview``: when each step would happen for one prospect, and each email as it would leave.

Nothing here is a second implementation: the times come from ``sequences.schedule`` the way
``lifecycle`` positions an enrollment (a touch at the next open moment of the window in the
prospect's zone and their country's working days, a wait from there), the texts from
``steps.render_touch`` and ``choose_variant``, the message from ``channels.message.build`` with the
headers ``send_batch`` gives it, and today's room from ``sending.caps``. Nothing is stored.
Two things are assumed, and said: a person's task is done the moment it is due, and a
wait-for-signal step waits until its timeout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session

from channels.message import OutgoingEmail, build
from sequencer.core.config import Settings
from sequencer.core.models import Account, Enrollment, Prospect, SequenceVersion
from sequencer.engine.guards import TouchContext
from sequencer.engine.send_batch import _with_footer
from sequencer.engine.steps import choose_variant, render_touch
from sequencer.engine.tick_state import TickState
from sequencer.enrollments import lifecycle
from sequencer.sending import caps, mailboxes
from sequencer.sequences import schedule
from sequencer.sequences.context import sender_values
from sequencer.sequences.rendering import RenderError
from suppression.tokens import unsubscribe_headers


@dataclass
class PreviewStep:
    number: int
    step_id: str
    kind: str
    at: datetime | None  # UTC; None after the end
    note: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    text: str = ""
    problem: str = ""  # why it would be blocked (a missing variable, ...)


@dataclass
class Preview:
    sequence: str
    version: int
    prospect: str
    timezone: str
    country: str
    mailbox: str
    cap_room: str
    steps: list[PreviewStep]


def preview(session: Session, settings: Settings, version: SequenceVersion, prospect: Prospect,
            start: datetime) -> Preview:
    """The calendar and the emails of ``version`` for ``prospect`` enrolled at ``start``."""
    definition = version.definition
    window = lifecycle.window_of(definition)
    account = session.get(Account, prospect.account_id) if prospect.account_id else None
    owner = prospect.owner or definition.get("owner", "")
    pool = mailboxes.pool(session, definition, owner)
    mailbox = pool[0] if pool else None
    enrollment = Enrollment(id=0, prospect_id=prospect.id, sequence_version_id=version.id,
                            sequence_name=version.name, enrolled_at=start)
    tz, country = prospect.timezone, prospect.country
    moment, thread_subject, steps = start, "", []
    for number, step in enumerate(definition["steps"], 1):
        kind = step["kind"]
        if kind in ("wait", "wait_for_signal"):
            wait = step["wait"] if kind == "wait" else step["timeout"]
            moment = schedule.wait_until(moment, wait, window, tz, country)
            note = f"wait {_wait(wait)}" if kind == "wait" else \
                f"wait for a {step['signal']!r} signal, at most {_wait(wait)} (shown: the timeout)"
            steps.append(PreviewStep(number, step.get("id", ""), kind, moment, note))
            continue
        moment = schedule.next_open(moment, window, tz, country)
        item = PreviewStep(number, step.get("id", ""), kind, moment)
        ctx = TouchContext(session=session, now=moment, settings=settings, enrollment=enrollment, prospect=prospect,
                           account=account, step=step, channel=kind, definition=definition, tick=TickState(session),
                           mailbox=mailbox)
        variant = choose_variant(step, prospect)
        sender = sender_values(mailbox, owner)
        try:
            rendered = render_touch(ctx, variant, sender, thread_subject)
        except RenderError as exc:
            item.problem = f"blocked, the enrollment paused for you: {exc}"
            steps.append(item)
            continue
        if kind == "email":
            new_thread = bool(step.get("new_thread") or not thread_subject)
            thread_subject = rendered["subject"] if new_thread else thread_subject
            item.note = f"variant {variant['name']}" if len(step["variants"]) > 1 else ""
            if mailbox is None:
                item.problem = "no mailbox can send it (sequencer mailboxes add)"
            else:
                message = build(OutgoingEmail(
                    mailbox=mailbox, to=prospect.email, subject=rendered["subject"],
                    text=_with_footer(rendered["text"], ctx), html=rendered["html"],
                    message_id="assigned-when-sent@preview",
                    in_reply_to="" if new_thread else "the-first-email@preview",
                    references=[] if new_thread else ["the-first-email@preview"],
                    headers=unsubscribe_headers(settings, prospect.email), date=moment))
                item.headers = [(name, str(value)) for name, value in message.items()
                                if name.lower() not in ("content-type", "content-transfer-encoding", "mime-version")]
                item.text = _with_footer(rendered["text"], ctx)
        else:
            item.note = f"task for {owner or 'unassigned'} (assumed done when due)"
            item.text = rendered["text"]
        steps.append(item)
    room = _cap_room(session, settings, mailbox, prospect, start) if mailbox else "no mailbox"
    return Preview(version.name, version.version, prospect.email, tz, country, mailbox.address if mailbox else "",
                   room, steps)


def _wait(wait: dict) -> str:
    return lifecycle.describe_wait(wait)


def _cap_room(session: Session, settings: Settings, mailbox, prospect: Prospect, now: datetime) -> str:
    """Today's room under each cap the first email would count against."""
    limits = caps.caps_for(settings, mailbox, prospect.email.rpartition("@")[2], now)
    used = caps.counters(session, [cap.key for cap in limits])
    return "; ".join(f"{cap.label}: {max(cap.limit - used.get(cap.key, 0), 0)} of {cap.limit} left"
                     for cap in limits)
