"""Sends, refusals, bounces and complaints per mailbox over a period: three grouped queries.

The one definition protection and the deliverability report share. ``sent`` is what a server
accepted (a touch with ``sent_at``); ``refused`` what it refused at send time (a ``Bounce``
from ``smtp``: that touch has no ``sent_at``), so ``attempted`` = sent + refused is the
denominator of every rate. A bounce about our own message (too big, bad syntax) is left out
of the bounce count: it is our fault, not a sign of the recipients' or providers' trust.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlmodel import Session, func, select

from sequencer.core.models import Bounce, InboundMessage, Touch


@dataclass(frozen=True)
class Counts:
    sent: int = 0
    refused: int = 0
    bounces: int = 0
    complaints: int = 0

    @property
    def attempted(self) -> int:
        return self.sent + self.refused

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.sent + other.sent, self.refused + other.refused, self.bounces + other.bounces,
                      self.complaints + other.complaints)


def rate(numerator: int, denominator: int) -> float | None:
    """A share, or None when there is nothing to divide by (never NaN, never Infinity)."""
    return numerator / denominator if denominator > 0 else None


def per_mailbox(session: Session, since: datetime, until: datetime | None,
                mailbox_ids: Iterable[int] | None = None) -> dict[int, Counts]:
    """Each mailbox's counts in [since, until) (no end: until None); mailboxes with none are absent."""
    ids = None if mailbox_ids is None else list(mailbox_ids)
    end = until or datetime.max.replace(tzinfo=UTC)
    sent = select(Touch.mailbox_id, func.count()).where(
        Touch.sent_at >= since, Touch.sent_at < end, Touch.mailbox_id.is_not(None))
    bounced = select(Bounce.mailbox_id, Bounce.source, func.count()).where(
        Bounce.at >= since, Bounce.at < end, Bounce.mailbox_id.is_not(None), Bounce.about_our_message.is_(False))
    complained = (select(Touch.mailbox_id, func.count()).select_from(InboundMessage)
                  .join(Touch, Touch.id == InboundMessage.touch_id)
                  .where(InboundMessage.kind == "complaint", InboundMessage.received_at >= since,
                         InboundMessage.received_at < end))
    if ids is not None:
        sent, bounced = sent.where(Touch.mailbox_id.in_(ids)), bounced.where(Bounce.mailbox_id.in_(ids))
        complained = complained.where(Touch.mailbox_id.in_(ids))
    found: dict[int, dict[str, int]] = {}
    for mailbox_id, n in session.exec(sent.group_by(Touch.mailbox_id)):
        found.setdefault(mailbox_id, {})["sent"] = n
    for mailbox_id, source, n in session.exec(bounced.group_by(Bounce.mailbox_id, Bounce.source)):
        tally = found.setdefault(mailbox_id, {})
        tally["bounces"] = tally.get("bounces", 0) + n
        if source == "smtp":
            tally["refused"] = tally.get("refused", 0) + n
    for mailbox_id, n in session.exec(complained.group_by(Touch.mailbox_id)):
        if mailbox_id is not None:
            found.setdefault(mailbox_id, {})["complaints"] = n
    return {mailbox_id: Counts(**tally) for mailbox_id, tally in found.items()}
