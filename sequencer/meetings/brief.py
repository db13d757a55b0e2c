"""The AE brief: what the AE should know before the meeting, from what the engine already holds.

Who the prospect is, their account, the signal that started the outreach, the touches, and
the reply that led to the meeting. Plain text: it goes into the invitation's DESCRIPTION,
its email, and ``sequencer meetings show``.

Most of it was written by others (the prospect's reply, a signal's payload, imported
names): it is only ever shown as text, trimmed, with control characters taken out, and
whoever renders it (the email's HTML part, the iCalendar writer) escapes it there.
"""

from __future__ import annotations

import re
from typing import Any

from sqlmodel import Session, col, or_, select

from sequencer.core.models import Account, Enrollment, InboundMessage, Meeting, Prospect, Signal, Touch

MAX_TOUCHES = 20  # the latest ones; a brief is read in a minute
MAX_REPLY_CHARS = 1500
MAX_FIELD_CHARS = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # a line break too: one field, one line


def brief(session: Session, meeting: Meeting) -> str:
    """The brief for ``meeting`` as plain text, one fact a line (read-only)."""
    prospect = session.get(Prospect, meeting.prospect_id)
    lines: list[str] = []
    if prospect is None:
        return f"Prospect #{meeting.prospect_id} (no longer on record)"
    name = " ".join(p for p in (prospect.first_name, prospect.last_name) if p)
    who = ", ".join(p for p in (_clean(name), _clean(prospect.title)) if p)
    lines.append(f"Prospect: {who + ' ' if who else ''}<{prospect.email}>")
    facts = [f"time zone {prospect.timezone}" if prospect.timezone else "", _clean(prospect.country),
             _clean(prospect.phone), _clean(prospect.linkedin_url)]
    if any(facts):
        lines.append("  " + " | ".join(f for f in facts if f))
    account = session.get(Account, prospect.account_id) if prospect.account_id else None
    if account is not None:
        about = [_clean(account.industry), f"{account.employees} employees" if account.employees else "",
                 _clean(account.country)]
        # a company known only by name (its people use free-mail) has no domain to show
        name = _clean(account.name)
        label = f"{name} ({account.domain})" if name and account.domain else (name or account.domain or "-")
        lines.append(f"Account: {label}" + (f", {', '.join(a for a in about if a)}" if any(about) else ""))
    else:
        lines.append("Account: none on record")

    enrollment = _enrollment(session, meeting, prospect)
    signal = session.get(Signal, enrollment.signal_id) if enrollment and enrollment.signal_id else None
    if signal is None:
        signal = session.exec(select(Signal).where(Signal.prospect_id == prospect.id)
                              .order_by(col(Signal.occurred_at).desc(), col(Signal.id).desc())).first()
    if signal is not None:
        when = f" on {signal.occurred_at:%Y-%m-%d}" if signal.occurred_at else ""
        source = f" from {_clean(signal.source)}" if signal.source else ""
        lines.append(f"Started by: signal {_clean(signal.type)}{when}{source}")
        payload = _payload(signal.payload)
        if payload:
            lines.append(f"  {payload}")
    else:
        lines.append("Started by: no signal on record")
    if enrollment is not None:
        state = enrollment.state + (f" ({_clean(enrollment.reason)})" if enrollment.reason else "")
        lines.append(f"Sequence: {enrollment.sequence_name}, step {enrollment.current_step + 1}, {state}")

    touches = session.exec(select(Touch).where(Touch.prospect_id == prospect.id)
                           .order_by(col(Touch.created_at).desc(), col(Touch.id).desc()).limit(MAX_TOUCHES)).all()
    done = [t for t in reversed(touches) if t.state in ("sent", "queued")]
    lines.append(f"Touches: {len(done)}" + (" (the latest)" if len(touches) == MAX_TOUCHES else ""))
    for touch in done:
        at = touch.sent_at or touch.created_at
        when = f"{at:%Y-%m-%d %H:%M} UTC" if at else "(no time)"
        subject = f' "{_clean(touch.subject)}"' if touch.subject else ""
        lines.append(f"  {when}  {touch.channel or 'step'} {_clean(touch.step_id) or touch.step_index + 1}{subject}")

    reply = _reply(session, meeting, prospect)
    if reply is not None:
        text = _reply_text(reply)
        at = f" on {reply.received_at:%Y-%m-%d %H:%M} UTC" if reply.received_at else ""
        lines.append(f"The reply that led to the meeting{at}, from {reply.from_address}:")
        lines.extend(f"  > {line}" for line in text.splitlines() or [f'"{_clean(reply.subject)}"'])
    else:
        lines.append("The reply that led to the meeting: none on record")
    if meeting.sdr:
        lines.append(f"Booked by: {meeting.sdr} (via {meeting.source})")
    return "\n".join(lines)


def _enrollment(session: Session, meeting: Meeting, prospect: Prospect) -> Enrollment | None:
    if meeting.enrollment_id:
        found = session.get(Enrollment, meeting.enrollment_id)
        if found is not None:
            return found
    return session.exec(select(Enrollment).where(Enrollment.prospect_id == prospect.id)
                        .order_by(col(Enrollment.enrolled_at).desc(), col(Enrollment.id).desc())).first()


def _reply(session: Session, meeting: Meeting, prospect: Prospect) -> InboundMessage | None:
    """The prospect's latest reply before the meeting was booked: from their address, or
    matched to one of their enrollments (a reply from a colleague of theirs counts too)."""
    enrollments = session.exec(select(Enrollment.id).where(Enrollment.prospect_id == prospect.id)).all()
    query = select(InboundMessage).where(
        InboundMessage.kind == "reply", InboundMessage.quarantined == False,  # noqa: E712 (SQL, not Python)
        or_(InboundMessage.from_address == prospect.email, col(InboundMessage.enrollment_id).in_(enrollments))
        if enrollments else InboundMessage.from_address == prospect.email,
    )
    if meeting.created_at is not None:
        query = query.where(InboundMessage.received_at <= meeting.created_at)
    return session.exec(query.order_by(col(InboundMessage.received_at).desc(), col(InboundMessage.id).desc())).first()


def _reply_text(message: InboundMessage) -> str:
    classification = (message.detail or {}).get("classification") or {}
    text = str(classification.get("reply_text") or "").strip()
    if len(text) > MAX_REPLY_CHARS:
        text = text[:MAX_REPLY_CHARS].rstrip() + " [...]"
    return "\n".join(_clean(line, MAX_REPLY_CHARS) for line in text.splitlines())


def _payload(payload: Any) -> str:
    """A signal's payload as ``key: value`` pairs: its scalars, the first few."""
    if not isinstance(payload, dict):
        return ""
    pairs = [f"{_clean(str(k), 40)}: {_clean(str(v), 80)}" for k, v in payload.items()
             if isinstance(v, (str, int, float)) and not isinstance(v, bool) and str(v).strip()]
    return _clean("; ".join(pairs[:6]))


def _clean(text: str | None, limit: int = MAX_FIELD_CHARS) -> str:
    value = _CONTROL.sub(" ", text or "").strip()
    return value if len(value) <= limit else value[: limit - 3].rstrip() + "..."
