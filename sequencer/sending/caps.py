"""Volume caps: counters that are checked and incremented in one atomic database step.

Each cap is a row in ``capcounter`` keyed by what it limits and the period
(``mailbox:3:2026-11-25``). ``reserve`` counts one send against every counter it needs
with a conditional upsert (``used = used + 1`` only while ``used < limit``) and gives the
ones it moved back when another had no room; ``reserve_all`` does the same for a whole
batch of sends at once, all or nothing. The database serialises the updates, so the caps
hold with any number of workers, and Redis is never asked.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

from sqlalchemy import Date, TextClause, bindparam, delete, text, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, select

from sequencer.core import db
from sequencer.core.config import Settings
from sequencer.core.models import CapCounter, Mailbox


@dataclass(frozen=True)
class Cap:
    key: str
    limit: int
    label: str  # for people: "mailbox alex@x.io daily cap (40/day, warm-up day 3)"
    expires_on: date


def mailbox_daily_limit(mailbox: Mailbox, today: date) -> tuple[int, str]:
    """Today's cap for a mailbox, following its warm-up ramp; with a readable label."""
    if mailbox.warmup_start and mailbox.warmup_started_on:
        days = max((today - mailbox.warmup_started_on).days, 0)
        ramp = mailbox.warmup_start + mailbox.warmup_increment * days
        if ramp < mailbox.daily_cap:
            return ramp, f"warm-up day {days + 1}: {ramp}/day of {mailbox.daily_cap}"
    return mailbox.daily_cap, f"{mailbox.daily_cap}/day"


def mailbox_key(mailbox: Mailbox, day: date) -> str:
    """The counter key of a mailbox's daily cap."""
    return f"mailbox:{mailbox.id}:{day}"


def domain_key(sending_domain: str, day: date) -> str:
    """The counter key of a sending domain's daily cap."""
    return f"domain:{sending_domain}:{day}"


def caps_for(settings: Settings, mailbox: Mailbox, recipient_domain: str, now: datetime) -> list[Cap]:
    """Every cap one email from ``mailbox`` to ``recipient_domain`` counts against."""
    today = now.date()
    limit, label = mailbox_daily_limit(mailbox, today)
    return [
        Cap(mailbox_key(mailbox, today), limit, f"mailbox {mailbox.address} daily cap ({label})", today),
        Cap(domain_key(mailbox.sending_domain, today), settings.domain_daily_cap,
            f"sending domain {mailbox.sending_domain} daily cap ({settings.domain_daily_cap}/day)", today),
        *recipient_caps(settings, recipient_domain, now),
    ]


def recipient_caps(settings: Settings, recipient_domain: str, now: datetime) -> list[Cap]:
    """The caps on email to ``recipient_domain``, whichever mailbox sends it."""
    today = now.date()
    year, week, _ = today.isocalendar()
    week_end = today + timedelta(days=6 - today.weekday())  # Sunday, the week's last day
    return [
        Cap(f"recipient:{recipient_domain}:{today}", settings.recipient_domain_daily_cap,
            f"recipient domain {recipient_domain} daily cap ({settings.recipient_domain_daily_cap}/day)", today),
        Cap(f"recipient-week:{recipient_domain}:{year}-W{week:02d}", settings.recipient_domain_weekly_cap,
            f"recipient domain {recipient_domain} weekly cap ({settings.recipient_domain_weekly_cap}/week)",
            week_end),
    ]


def frees_at(cap: Cap) -> datetime:
    """The first moment after ``cap``'s period (UTC midnight after its last day)."""
    return datetime.combine(cap.expires_on + timedelta(days=1), time(), UTC)


def first_full(caps: list[Cap], used: dict[str, int]) -> Cap | None:
    """The first of ``caps`` whose counter in ``used`` has reached its limit."""
    return next((cap for cap in caps if used.get(cap.key, 0) >= cap.limit), None)


def counters(session: Session, keys: list[str]) -> dict[str, int]:
    """The current value of each counter in ``keys`` that exists."""
    if not keys:
        return {}
    return dict(session.exec(select(CapCounter.key, CapCounter.used).where(CapCounter.key.in_(keys))).all())


def reserve(session: Session, caps: list[Cap]) -> Cap | None:
    """Count one send against every cap, or against none; return the cap that had no room.

    One statement for all caps: each counter is inserted at 1, or has 1 added only
    while it is below its limit; the counters that moved come back. The database locks
    each row for the conditional update, so racing workers cannot both take the last
    place. When a counter did not move its cap is full, and the ones that did move are
    given back in the same transaction, so a batch of sends can go on with the next.
    """
    blocked = next((cap for cap in caps if cap.limit <= 0), None)
    if blocked is not None or not caps:
        return blocked
    params: dict[str, object] = {}
    for index, cap in enumerate(sorted(caps, key=lambda cap: cap.key)):  # the lock order of every cap statement
        params.update({f"key{index}": cap.key, f"limit{index}": cap.limit, f"ends{index}": cap.expires_on})
    statement = _reserve_statement(session.get_bind().dialect.name, len(caps))
    counted = set(session.connection().execute(statement, params).scalars())
    full = next((cap for cap in caps if cap.key not in counted), None)
    if full is not None and counted:
        release(session, [[cap for cap in caps if cap.key in counted]])
    return full


def reserve_all(session: Session, sends: list[list[Cap]]) -> bool:
    """Count a batch of sends against their caps at once, if they all fit; else count none.

    ``sends`` holds each send's caps. Sends sharing a counter add up, and each counter
    moves by its total only while the total fits under its limit (one executemany; the
    count of rows changed tells whether every counter moved). False when one did not:
    then nothing is counted, and the caller reserves send by send with ``reserve``,
    which says which cap is full.
    """
    counts = _totals(sends)
    by_key = {cap.key: cap for caps in sends for cap in caps}
    rows = [{"key": key, "n": n, "limit": by_key[key].limit, "ends": by_key[key].expires_on}
            for key, n in counts]
    if not rows or any(row["n"] > row["limit"] for row in rows):
        return not rows
    savepoint = session.begin_nested()
    if session.connection().execute(_RESERVE_ALL, rows).rowcount == len(rows):
        savepoint.commit()
        return True
    savepoint.rollback()
    return False


def release(session: Session, sends: list[list[Cap]]) -> None:
    """Give back sends counted but not made: one per send against each of its caps."""
    rows = [{"key": key, "n": n} for key, n in _totals(sends)]
    if rows:
        session.connection().execute(_RELEASE, rows)


def _totals(sends: list[list[Cap]]) -> list[tuple[str, int]]:
    """How many of ``sends`` count against each counter, in key order: every statement that
    moves counters moves them in that order, so two workers cannot lock them crosswise."""
    return sorted(Counter(cap.key for caps in sends for cap in caps).items())


_RELEASE = text("UPDATE capcounter SET used = used - :n WHERE key = :key")


_RESERVE_ALL = text(
    "INSERT INTO capcounter (key, used, cap_limit, expires_on) VALUES (:key, :n, :limit, :ends) "
    "ON CONFLICT (key) DO UPDATE SET used = capcounter.used + excluded.used, cap_limit = excluded.cap_limit "
    "WHERE capcounter.used + excluded.used <= excluded.cap_limit"
).bindparams(bindparam("ends", type_=Date))


class Tally:
    """Counter values as one tick sees them: read once, then kept up to date by its own sends.

    The mailbox choice for a batch of sends reads it instead of the database, so the
    sends planned earlier in the batch count; ``reserve`` stays the real test.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.values: dict[str, int] = {}

    def read(self, keys: list[str]) -> dict[str, int]:
        """The value of every counter in ``keys`` (0 for one that does not exist yet)."""
        for chunk in db.chunks(sorted({key for key in keys if key not in self.values})):
            found = counters(self.session, chunk)
            self.values.update({key: found.get(key, 0) for key in chunk})
        return self.values

    def count(self, caps: list[Cap]) -> None:
        for cap in caps:
            self.values[cap.key] = self.values.get(cap.key, 0) + 1


@lru_cache(maxsize=16)
def _reserve_statement(dialect: str, count: int) -> TextClause:
    """Built once per number of caps: it runs on every send.

    Written as SQL text because SQLAlchemy does not cache a compiled multi-row
    INSERT, and compiling it on every send cost twenty times running it. The same
    text runs on SQLite and PostgreSQL (``dialect`` is kept in the key all the same).
    """
    rows = ", ".join(f"(:key{i}, 1, :limit{i}, :ends{i})" for i in range(count))
    return text(
        f"INSERT INTO capcounter (key, used, cap_limit, expires_on) VALUES {rows} "
        "ON CONFLICT (key) DO UPDATE SET used = capcounter.used + 1, cap_limit = excluded.cap_limit "
        "WHERE capcounter.used < excluded.cap_limit RETURNING key"
    ).bindparams(*(bindparam(f"ends{i}", type_=Date) for i in range(count)))


def take_gap(session: Session, mailbox: Mailbox, now: datetime, gap_seconds: float) -> bool:
    """Claim the mailbox's next send slot if ``gap_seconds`` have passed since its last send."""
    threshold = now - timedelta(seconds=gap_seconds)
    result = session.execute(
        update(Mailbox)
        .where(Mailbox.id == mailbox.id)
        .where((Mailbox.last_sent_at.is_(None)) | (Mailbox.last_sent_at <= threshold))
        .values(last_sent_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    set_committed_value(mailbox, "last_sent_at", now)  # the next send of this batch waits from here
    return True


def purge_expired(session: Session, today: date) -> int:
    """Drop counters for periods that have ended."""
    result = session.execute(delete(CapCounter).where(CapCounter.expires_on < today))
    return result.rowcount or 0
