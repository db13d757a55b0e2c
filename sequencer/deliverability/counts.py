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
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Date, cast
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
    """Each mailbox's counts in [since, until) (no end: until None); mailboxes with none are absent.

    ``mailbox_ids`` None is every mailbox (no filter on the id, so the period's index range is all
    the database reads).
    """
    return {key[0]: counts for key, counts in _grouped(session, since, until, mailbox_ids, by_day=False).items()}


def per_mailbox_day(session: Session, since: datetime, until: datetime | None,
                    mailbox_ids: Iterable[int] | None = None) -> dict[tuple[int, str], Counts]:
    """The same counts per mailbox and UTC day (``YYYY-MM-DD``): one scan gives a report its daily
    table and, summed, its totals."""
    return _grouped(session, since, until, mailbox_ids, by_day=True)


def utc_day(session: Session, column: Any) -> Any:
    """The UTC day of a stored time: the column holds UTC without a zone on PostgreSQL (a cast to
    date is the day) and ISO text on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(column, Date)
    return func.substr(column, 1, 10)


def _grouped(session: Session, since: datetime, until: datetime | None, mailbox_ids: Iterable[int] | None,
             by_day: bool) -> dict[tuple, Counts]:
    ids = None if mailbox_ids is None else list(mailbox_ids)
    end = until or datetime.max.replace(tzinfo=UTC)

    def keyed(mailbox: Any, moment: Any) -> list[Any]:
        return [mailbox, utc_day(session, moment)] if by_day else [mailbox]

    sent_keys = keyed(Touch.mailbox_id, Touch.sent_at)
    sent = select(*sent_keys, func.count()).where(Touch.sent_at >= since, Touch.sent_at < end,
                                                  Touch.mailbox_id.is_not(None))
    bounce_keys = keyed(Bounce.mailbox_id, Bounce.at)
    bounced = select(*bounce_keys, Bounce.source, func.count()).where(
        Bounce.at >= since, Bounce.at < end, Bounce.mailbox_id.is_not(None), Bounce.about_our_message.is_(False))
    complaint_keys = keyed(Touch.mailbox_id, InboundMessage.received_at)
    complained = (select(*complaint_keys, func.count()).select_from(InboundMessage)
                  .join(Touch, Touch.id == InboundMessage.touch_id)
                  .where(InboundMessage.kind == "complaint", InboundMessage.received_at >= since,
                         InboundMessage.received_at < end, Touch.mailbox_id.is_not(None)))
    if ids is not None:
        sent, bounced = sent.where(Touch.mailbox_id.in_(ids)), bounced.where(Bounce.mailbox_id.in_(ids))
        complained = complained.where(Touch.mailbox_id.in_(ids))
    found: dict[tuple, dict[str, int]] = {}
    for *key, n in session.exec(sent.group_by(*sent_keys)):
        found.setdefault(_key(key), {})["sent"] = n
    for *key, source, n in session.exec(bounced.group_by(*bounce_keys, Bounce.source)):
        tally = found.setdefault(_key(key), {})
        tally["bounces"] = tally.get("bounces", 0) + n
        if source == "smtp":
            tally["refused"] = tally.get("refused", 0) + n
    for *key, n in session.exec(complained.group_by(*complaint_keys)):
        found.setdefault(_key(key), {})["complaints"] = n
    return {key: Counts(**tally) for key, tally in found.items()}


def _key(values: list[Any]) -> tuple:
    """(mailbox_id,) or (mailbox_id, "YYYY-MM-DD"): a date from PostgreSQL is shown as SQLite's text."""
    return tuple(value.isoformat() if isinstance(value, date) else value for value in values)
