"""Rows for the report and protection tests, as the engine leaves them: prospects enrolled by a
signal, email touches sent from a mailbox, and what came back (bounces, complaints, replies).

Written straight to the tables (the engine's own tests cover how they get there); every row
carries the keys the engine would give it, foreign keys included.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from sqlmodel import Session

from sequencer.core.models import (
    Bounce,
    Enrollment,
    InboundMessage,
    Mailbox,
    Prospect,
    SequenceVersion,
    Signal,
    Touch,
)

SAM = "sam@outreach-acme.example"
JO = "jo@outreach-acme.example"
_serial = itertools.count(1)


def mailbox(session: Session, address: str, **fields: object) -> Mailbox:
    box = Mailbox(address=address, sending_domain=address.rpartition("@")[2], **fields)
    session.add(box)
    session.commit()
    return box


def sequence(session: Session, name: str = "outbound") -> SequenceVersion:
    version = SequenceVersion(name=name, version=1, content_hash=name, definition={"steps": [
        {"index": 0, "id": "intro", "kind": "email"}, {"index": 1, "id": "bump", "kind": "email"}]})
    session.add(version)
    session.commit()
    return version


def sent(session: Session, box: Mailbox, at: datetime, n: int, *, version: SequenceVersion, step: int = 0,
         variant: str = "A", signal_type: str = "intent_surge", lead_minutes: float = 3.0,
         owner: str = "sam.sdr@acme.example") -> list[Touch]:
    """``n`` prospects, each enrolled by a signal ``lead_minutes`` before ``at`` and sent one email then."""
    touches = []
    for _ in range(n):
        serial = next(_serial)
        prospect = Prospect(email=f"p{serial}@company{serial}.example", owner=owner)
        session.add(prospect)
        session.flush()
        signal = Signal(type=signal_type, dedupe_key=f"s{serial}", prospect_id=prospect.id, source="test",
                        occurred_at=at - timedelta(minutes=lead_minutes), received_at=at)
        session.add(signal)
        session.flush()
        enrollment = Enrollment(prospect_id=prospect.id, sequence_version_id=version.id,
                                sequence_name=version.name, signal_id=signal.id, mailbox_id=box.id, enrolled_at=at,
                                current_step=step + 1)
        session.add(enrollment)
        session.flush()
        touch = Touch(enrollment_id=enrollment.id, prospect_id=prospect.id, step_index=step,
                      step_id=version.definition["steps"][step]["id"], channel="email", state="sent",
                      variant=variant, mailbox_id=box.id, recipient=prospect.email, created_at=at, sent_at=at)
        session.add(touch)
        touches.append(touch)
    session.commit()
    return touches


def bounce(session: Session, touch: Touch, at: datetime, bounce_type: str = "hard", reason: str = "user_unknown",
           status: str = "5.1.1", diagnostic: str = "550 5.1.1 no such user", source: str = "dsn") -> None:
    session.add(Bounce(at=at, source=source, touch_id=touch.id, mailbox_id=touch.mailbox_id,
                       recipient=touch.recipient, bounce_type=bounce_type, bounce_reason=reason, status_code=status,
                       diagnostic=diagnostic))
    if source == "smtp":  # refused at send time: the touch never counted as sent
        touch.state, touch.sent_at = "failed", None
        session.add(touch)
    session.commit()


def inbound(session: Session, touch: Touch, at: datetime, kind: str) -> InboundMessage:
    """A complaint, reply or unsubscribe request matched to ``touch``."""
    message = InboundMessage(dedupe_key=f"in-{next(_serial)}", kind=kind, touch_id=touch.id,
                             enrollment_id=touch.enrollment_id, from_address=touch.recipient, received_at=at)
    session.add(message)
    session.commit()
    return message
