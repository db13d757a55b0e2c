"""Sending mailboxes: configuration, pause/resume, and picking one for a thread.

A prospect stays on one mailbox for the whole thread (replies must come from the
address they answered). The first email picks, from the sequence's pool, the mailbox
with the most room today that is not paused, whose domain is healthy and whose caps
are not full; when none qualifies the touch is deferred with every mailbox's reason.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, select

from sequencer.core.config import Settings
from sequencer.core.models import CapCounter, Mailbox
from sequencer.sending import caps
from suppression.normalize import domain_of, normalize_email

RECHECK = timedelta(hours=1)  # when a paused mailbox or an unhealthy domain is looked at again

def _flag(value: Any) -> bool:
    """true or false, and nothing that merely looks like one ("false" would be truthy)."""
    if not isinstance(value, bool):
        raise TypeError(value)
    return value


_FIELDS: dict[str, Any] = {
    "display_name": str, "owner": str, "smtp_host": str, "smtp_port": int, "smtp_security": str,
    "smtp_username": str, "smtp_password_env": str, "daily_cap": int, "warmup_start": int,
    "warmup_increment": int, "min_gap_seconds": int, "gap_jitter_seconds": int,
    "imap_host": str, "imap_port": int, "imap_ssl": _flag, "imap_username": str, "imap_password_env": str,
}
_IGNORED = {"address", "warmup_started_on"}
# A password is never stored: only the name of the environment variable that holds it, so the
# database (and its backups) hold nothing that logs in, and a password changes without a write.
_SECRETS = {"smtp_password": "smtp_password_env", "imap_password": "imap_password_env"}


class MailboxError(ValueError):
    """A mailbox that cannot be configured or found; the message names it."""


def upsert(session: Session, values: dict[str, Any], today: date | None = None) -> Mailbox:
    """Create or update a mailbox from a config mapping; raise ``MailboxError`` on bad fields."""
    try:
        address = normalize_email(str(values.get("address", "")))
    except ValueError as exc:
        raise MailboxError(f"address: {exc}") from None
    mailbox = get(session, address) or Mailbox(address=address, sending_domain=domain_of(address))
    # Check everything before touching the mailbox, so a refused update changes nothing.
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key in _IGNORED:
            continue
        if key in _SECRETS:
            raise MailboxError(f"mailbox {address}: {key}: passwords are not stored; put it in an environment "
                               f"variable and give its name as {_SECRETS[key]}")
        if key not in _FIELDS:
            raise MailboxError(f"mailbox {address}: unknown field {key!r}")
        try:
            changes[key] = _FIELDS[key](value)
        except (TypeError, ValueError):
            kind = "true or false" if _FIELDS[key] is _flag else _FIELDS[key].__name__
            raise MailboxError(f"mailbox {address}: {key} must be {kind}") from None
    if any(ord(char) < 32 or ord(char) == 127 for char in changes.get("display_name", "")):
        raise MailboxError(f"mailbox {address}: display_name must be one line of text (no control characters)")
    if changes.get("smtp_security", mailbox.smtp_security) not in ("none", "starttls", "ssl"):
        raise MailboxError(f"mailbox {address}: smtp_security must be none, starttls or ssl")
    for key in ("daily_cap", "warmup_start", "warmup_increment", "min_gap_seconds", "gap_jitter_seconds"):
        if changes.get(key, getattr(mailbox, key)) < 0:
            raise MailboxError(f"mailbox {address}: {key} must not be negative")
    for key in ("smtp_port", "imap_port"):
        if not 0 <= changes.get(key, getattr(mailbox, key)) < 65536:
            raise MailboxError(f"mailbox {address}: {key} must be a port number (0-65535)")
    if values.get("warmup_started_on"):
        try:
            changes["warmup_started_on"] = date.fromisoformat(str(values["warmup_started_on"]))
        except ValueError:
            raise MailboxError(f"mailbox {address}: warmup_started_on must be a date (YYYY-MM-DD)") from None
    for key, value in changes.items():
        setattr(mailbox, key, value)
    if mailbox.warmup_start and mailbox.warmup_started_on is None:
        mailbox.warmup_started_on = today or date.today()
    session.add(mailbox)
    session.flush()
    return mailbox


def sync_from_settings(session: Session, settings: Settings, today: date) -> list[Mailbox]:
    """Make the database match the ``[[mailboxes]]`` of the config file (adds and updates)."""
    boxes = []
    for index, values in enumerate(settings.mailboxes):
        try:
            boxes.append(upsert(session, values, today))
        except MailboxError as exc:
            raise MailboxError(f"{settings.source}: mailboxes[{index}]: {exc}") from None
    session.commit()
    return boxes


def get(session: Session, address: str) -> Mailbox | None:
    return session.exec(select(Mailbox).where(Mailbox.address == address.strip().lower())).first()


def require(session: Session, address: str) -> Mailbox:
    mailbox = get(session, address)
    if mailbox is None:
        raise MailboxError(f"unknown mailbox {address!r}")
    return mailbox


def set_paused(session: Session, address: str, paused: bool, reason: str = "") -> Mailbox:
    mailbox = require(session, address)
    mailbox.paused = paused
    mailbox.pause_reason = reason if paused else ""
    session.add(mailbox)
    session.commit()
    return mailbox


def relay_failed(session: Session, failures: list[tuple[Mailbox, str]]) -> None:
    """Count one outage against each mailbox's relay (with what failed): the failures in a
    row set how soon its batch is tried again, and ``mailboxes list`` shows them.

    One increment per mailbox per batch, made by the database (``+ 1``), so two workers
    that both found the relay down count twice and never lose a count; the count comes
    back onto the object, which a long-lived session keeps between ticks. Ids in order:
    rows are locked in one order on every path.
    """
    for mailbox, error in sorted(failures, key=lambda pair: pair[0].id):
        count = session.connection().execute(
            update(Mailbox).where(Mailbox.id == mailbox.id)
            .values(relay_failures=Mailbox.relay_failures + 1, relay_error=error[:500])
            .returning(Mailbox.relay_failures).execution_options(synchronize_session=False)).scalar_one()
        set_committed_value(mailbox, "relay_failures", count)
        set_committed_value(mailbox, "relay_error", error[:500])


def relay_answered(session: Session, mailboxes: list[Mailbox]) -> None:
    """The relays of these mailboxes took a message: their outage, if they had one, is over.

    Written only for a mailbox that had failures when it was read, so the common case writes nothing.
    """
    ended = {mailbox.id: mailbox for mailbox in mailboxes if mailbox.relay_failures}
    if ended:
        session.connection().execute(
            update(Mailbox).where(Mailbox.id.in_(sorted(ended))).values(relay_failures=0, relay_error="")
            .execution_options(synchronize_session=False))
    for mailbox in ended.values():
        set_committed_value(mailbox, "relay_failures", 0)
        set_committed_value(mailbox, "relay_error", "")


def used_today(session: Session, mailbox: Mailbox, today: date) -> int:
    row = session.get(CapCounter, caps.mailbox_key(mailbox, today))
    return row.used if row else 0


def pool(session: Session, definition: dict, owner: str, fresh: bool = False) -> list[Mailbox]:
    """The mailboxes a sequence may send from: its list, else the owner's, else all.

    ``fresh`` re-reads rows the session already holds, so a pause made elsewhere counts.
    """
    options = {"populate_existing": True} if fresh else {}
    if definition.get("mailboxes"):
        query = select(Mailbox).where(Mailbox.address.in_(definition["mailboxes"]))
        return list(session.exec(query.execution_options(**options)))
    if owner:
        owned = list(session.exec(select(Mailbox).where(Mailbox.owner == owner).execution_options(**options)))
        if owned:
            return owned
    return list(session.exec(select(Mailbox).order_by(Mailbox.id).execution_options(**options)))


class Choice(NamedTuple):
    """The mailbox to send from and the caps its email counts against; or None with every
    candidate's reason and when to retry."""

    mailbox: Mailbox | None
    reasons: list[str]
    retry_at: datetime | None = None
    limits: list[caps.Cap] | None = None


class Roster:
    """Candidate mailboxes with each one's counter key and daily limit on one day.

    Built once a tick for a sequence's pool, so choosing a mailbox for each of its
    emails does not walk every mailbox's settings again.
    """

    def __init__(self, candidates: list[Mailbox], today: date) -> None:
        self.mailboxes = candidates
        self.today = today
        self.entries = [(m.id, caps.mailbox_key(m, today), caps.mailbox_daily_limit(m, today)[0], m)
                        for m in candidates]
        self.keys = [key for _, key, _, _ in self.entries]
        self.keys += sorted({caps.domain_key(m.sending_domain, today) for m in candidates})


def choose(
    session: Session,
    now: datetime,
    settings: Settings,
    candidates: list[Mailbox] | Roster,
    recipient_domain: str,
    domain_problem: Callable[[str], str],
    fresh: bool = False,
    tally: caps.Tally | None = None,
) -> Choice:
    """The candidate with most room that can send now, or None and every candidate's reason.

    Each candidate is re-read before it is judged (unless the caller says its copies are
    ``fresh``, read this tick): a pause or a new cap made from another connection (the
    CLI, another worker) counts even if the caller's copy is older. When none can send,
    ``retry_at`` is the earliest moment one of them may: a full cap frees up when its
    period ends, a pause or a domain problem is looked at again in an hour. A ``tally``
    shared by a batch of choices makes the sends chosen before this one count.
    """
    reasons: list[str] = []
    retry: list[datetime] = []
    today = now.date()
    roster = candidates if isinstance(candidates, Roster) and candidates.today == today else Roster(
        list(getattr(candidates, "mailboxes", candidates)), today)
    # One read for every counter the choice may look at: each mailbox's own, each
    # sending domain's, and the recipient domain's.
    recipient = [cap.key for cap in caps.recipient_caps(settings, recipient_domain, now)]
    used = (tally or caps.Tally(session)).read(roster.keys + recipient)
    problems: dict[str, str] = {}
    for _, _, _, mailbox in sorted(roster.entries, key=lambda entry: (used.get(entry[1], 0) - entry[2], entry[0])):
        if not fresh:
            session.refresh(mailbox)
        if mailbox.paused:
            reasons.append(f"{mailbox.address}: paused ({mailbox.pause_reason or 'by hand'})")
            retry.append(now + RECHECK)
            continue
        if mailbox.sending_domain not in problems:
            problems[mailbox.sending_domain] = domain_problem(mailbox.sending_domain)
        if problems[mailbox.sending_domain]:
            reasons.append(f"{mailbox.address}: {problems[mailbox.sending_domain]}")
            retry.append(now + RECHECK)
            continue
        limits = caps.caps_for(settings, mailbox, recipient_domain, now)
        full = caps.first_full(limits, used)
        if full is not None:
            reasons.append(f"{mailbox.address}: {full.label} reached")
            retry.append(caps.frees_at(full))
            continue
        return Choice(mailbox, reasons, limits=limits)
    if not roster.mailboxes:
        reasons.append("no mailbox configured for this sequence (add one with `sequencer mailboxes add`)")
        retry.append(now + RECHECK)
    return Choice(None, reasons, min(retry))
