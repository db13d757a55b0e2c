"""The record of every refusal of one of our touches: the ``bounce`` table.

A refusal at send time and a DSN that arrives later are the same event for the reports
(bounces by type, by reason, the top status codes with an example diagnostic) and for the
sending mailbox a block bounce counts against. One row each, written in the caller's
transaction by the two places that learn of a bounce: the send path
(``sequencer.app.wiring``) and inbound ingest. A DSN that names no touch of ours is not
recorded here (it proves nothing about our mail); it stays in ``InboundMessage``.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from sequencer.core.models import Bounce, Touch

MAX_DIAGNOSTIC = 500


def record_bounce(session: Session, now: datetime, touch: Touch, *, source: str, bounce_type: str,
                  bounce_reason: str, status_code: str | None, diagnostic: str | None,
                  about_our_message: bool = False, inbound_message_id: int | None = None) -> Bounce:
    """Add one bounce row for ``touch`` (does not commit); ``source`` is ``smtp`` or ``dsn``."""
    row = Bounce(at=now, source=source, touch_id=touch.id, mailbox_id=touch.mailbox_id, recipient=touch.recipient,
                 bounce_type=bounce_type, bounce_reason=bounce_reason or "unknown", status_code=status_code or "",
                 diagnostic=(diagnostic or "")[:MAX_DIAGNOSTIC], about_our_message=about_our_message,
                 inbound_message_id=inbound_message_id)
    session.add(row)
    return row
