"""What a report covers: a time range and an optional mailbox or domain, checked before any query.

Every problem is a ``ReportError`` naming the option (``--since``, ``--mailbox``, ...), so the
CLI and the API can show it as it is. A range with nothing in it is not an error: the report
says it is empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlmodel import Session, select

from sequencer.core.models import Mailbox

DEFAULT_DAYS = 30
MAX_DAYS = 3660  # ten years: a larger range is a typo, and would make the daily table huge


class ReportError(ValueError):
    """A report that cannot be made as asked; the message names the option."""


@dataclass(frozen=True)
class Scope:
    since: datetime
    until: datetime
    mailbox: str = ""
    domain: str = ""
    mailbox_ids: tuple[int, ...] | None = None  # None: every mailbox

    @property
    def days(self) -> float:
        return (self.until - self.since).total_seconds() / 86400

    def to_dict(self) -> dict:
        return {"since": self.since.isoformat(), "until": self.until.isoformat(),
                "mailbox": self.mailbox or None, "domain": self.domain or None}


def moment(text: str | None, option: str, end_of_day: bool = False) -> datetime | None:
    """An ISO date or time (a date alone is midnight UTC; for ``--until``, the end of that day)."""
    if text is None or not text.strip():
        return None
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if end_of_day else start
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ReportError(f"{option}: {value!r} is not a date (YYYY-MM-DD) or an ISO time") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def scope(session: Session, now: datetime, since: str | datetime | None = None, until: str | datetime | None = None,
          mailbox: str = "", domain: str = "") -> Scope:
    """The checked scope: ``until`` defaults to now, ``since`` to ``DEFAULT_DAYS`` before it."""
    end = until if isinstance(until, datetime) else moment(until, "--until", end_of_day=True)
    start = since if isinstance(since, datetime) else moment(since, "--since")
    end = end or now
    start = start or end - timedelta(days=DEFAULT_DAYS)
    if start >= end:
        raise ReportError(f"--since ({start.isoformat()}) must be before --until ({end.isoformat()})")
    if end - start > timedelta(days=MAX_DAYS):
        raise ReportError(f"--since/--until: {(end - start).days} days is more than {MAX_DAYS}")
    if mailbox and domain:
        raise ReportError("--mailbox and --domain: give one or the other")
    ids = None
    if mailbox:
        found = session.exec(select(Mailbox.id).where(Mailbox.address == mailbox.strip().lower())).first()
        if found is None:
            raise ReportError(f"--mailbox: unknown mailbox {mailbox!r} (see `sequencer mailboxes list`)")
        ids = (found,)
    elif domain:
        ids = tuple(session.exec(select(Mailbox.id).where(Mailbox.sending_domain == domain.strip().lower())))
        if not ids:
            raise ReportError(f"--domain: no mailbox sends from {domain!r} (see `sequencer mailboxes list`)")
    return Scope(start, end, mailbox.strip().lower(), domain.strip().lower(), ids)
