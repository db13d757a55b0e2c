"""Inbound mail in: store once, match to the touch it answers, and stop on reply.

Matching uses our own Message-IDs: In-Reply-To first, then each References id.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from sequencer import decisions, enrollments
from sequencer.config import Settings
from sequencer.inbound.parse import parse_message
from sequencer.models import Enrollment, InboundMessage, Touch


@dataclass
class IngestResult:
    message: InboundMessage
    duplicate: bool
    action: str


def match_touch(session: Session, in_reply_to: str | None, references: list[str]) -> tuple[Touch | None, str]:
    """The touch a message answers, and how it was found."""
    candidates = [("in-reply-to", in_reply_to)] if in_reply_to else []
    candidates += [("references", ref) for ref in reversed(references)]
    for method, message_id in candidates:
        touch = session.exec(select(Touch).where(Touch.message_id == message_id)).first()
        if touch is not None:
            return touch, f"{method} {message_id}"
    return None, ""


def ingest_raw(session: Session, now: datetime, settings: Settings, raw: bytes) -> IngestResult:
    """Store one raw message (once) and stop the enrollment it replies to."""
    parsed = parse_message(raw)
    key = parsed.message_id or "sha256:" + hashlib.sha256(raw).hexdigest()
    existing = session.exec(select(InboundMessage).where(InboundMessage.dedupe_key == key)).first()
    if existing is not None:
        return IngestResult(existing, True, "duplicate: already processed")
    in_reply_to = parsed.in_reply_to
    touch, method = match_touch(session, in_reply_to, parsed.references)
    row = InboundMessage(
        dedupe_key=key, message_id=parsed.message_id or "", from_address=parsed.from_address or "",
        subject=parsed.subject, kind="reply", touch_id=touch.id if touch else None,
        enrollment_id=touch.enrollment_id if touch else None, match_method=method, received_at=now,
    )
    session.add(row)
    action = "no matching touch"
    if touch is not None:
        enrollment = session.get(Enrollment, touch.enrollment_id)
        if enrollment.state in enrollments.ACTIVE_STATES and enrollments.claim(session, enrollment):
            enrollments.stop(session, now, enrollment, f"replied: {parsed.subject!r} from {parsed.from_address}",
                             rule="defaults.reply", matched_by=method)
            action = "stopped enrollment"
        else:
            action = f"enrollment already {enrollment.state}"
            decisions.record(session, now, "reply", action, enrollment=enrollment, matched_by=method)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = session.exec(select(InboundMessage).where(InboundMessage.dedupe_key == key)).one()
        return IngestResult(existing, True, "duplicate: already processed")
    return IngestResult(row, False, action)
