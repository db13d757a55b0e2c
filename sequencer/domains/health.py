"""The cached health verdict of each sending domain, and whether it may send now.

A verdict is stored in ``DomainCheck`` and reused until it expires: the smallest TTL
DNS gave, kept between 5 minutes and 24 hours, so a fix in DNS is seen about as soon
as resolvers would see it, without querying DNS before every touch.

When DNS cannot answer ("unknown"), a domain that was verified before keeps its last
complete verdict, so a resolver hiccup does not stop a healthy domain; a domain that
was never verified may not send until DNS answers.

``sending_problem`` is what the engine asks, through the mailbox choice
(``sequencer.sending.mailboxes.choose``): a mailbox whose domain may not send is passed
over, and looked at again within the hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import dns.resolver
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from sequencer.core.clock import as_utc
from sequencer.core.config import Settings
from sequencer.core.models import DomainCheck, DomainCheckRecord, Mailbox, SendingDomainPause
from sequencer.domains.checks import DomainReport, build_resolver, check_domain
from suppression.normalize import normalize_domain

TTL_FLOOR = timedelta(minutes=5)
TTL_CEILING = timedelta(hours=24)


@dataclass(frozen=True)
class Health:
    """What sending may rely on: the status in force and why."""

    domain: str
    status: str  # pass | warn | fail | unknown
    explanation: str
    verified: bool  # False: no complete verdict was ever reached

    @property
    def may_send(self) -> bool:
        return self.status in ("pass", "warn")


def cache_lifetime(report: DomainReport) -> timedelta:
    """The smallest TTL seen, bounded; an unknown verdict is retried at the floor."""
    if report.status == "unknown" or report.min_ttl is None:
        return TTL_FLOOR
    return min(max(timedelta(seconds=report.min_ttl), TTL_FLOOR), TTL_CEILING)


def refresh(
    session: Session,
    clock_now: datetime,
    settings: Settings,
    domain: str,
    resolver: dns.resolver.Resolver | None = None,
) -> DomainCheck:
    """Check ``domain`` now, store the verdict and return the stored row.

    ``last_good_status`` moves only when the checks reached a verdict (not "unknown").
    Two workers refreshing the same new domain at once both end up updating one row.
    """
    domain = normalize_domain(domain)
    now = as_utc(clock_now)
    report = check_domain(domain, settings, resolver or build_resolver(settings))
    try:
        return _store(session, now, report)
    except IntegrityError:  # another worker inserted the row first: update theirs
        session.rollback()
        return _store(session, now, report)


def _store(session: Session, now: datetime, report: DomainReport) -> DomainCheck:
    row = session.get(DomainCheck, report.domain)
    if row is None:
        row = DomainCheck(domain=report.domain, status=report.status)
    row.status = report.status
    row.checked_at = now
    row.expires_at = now + cache_lifetime(report)
    row.report = report.to_dict()
    if report.status != "unknown":
        row.last_good_status, row.last_good_at = report.status, now
    session.add(row)
    # Kept for the deliverability report: the latest check and what changed since the one before.
    session.add(DomainCheckRecord(domain=report.domain, status=report.status, checked_at=now, report=row.report))
    session.commit()
    return row


def verdict_for(
    session: Session,
    now: datetime,
    settings: Settings,
    domain: str,
    resolver: dns.resolver.Resolver | None = None,
) -> DomainCheck:
    """The cached row while it is fresh; otherwise a refreshed one."""
    row = session.get(DomainCheck, normalize_domain(domain))
    if row is not None and row.expires_at is not None and as_utc(row.expires_at) > as_utc(now):
        return row
    return refresh(session, now, settings, domain, resolver)


def health_of(row: DomainCheck) -> Health:
    """The status in force for sending, with an explanation a person can act on."""
    report = DomainReport.from_dict(row.report) if row.report else None
    problems = [] if report is None else _problems(report)
    if row.status != "unknown":
        text = "; ".join(problems) or f"all checks {row.status}"
        return Health(row.domain, row.status, text, verified=True)
    if row.last_good_status:
        seen = as_utc(row.last_good_at).isoformat() if row.last_good_at else "earlier"
        text = (
            f"DNS incomplete now ({'; '.join(problems)}); keeping the last verdict "
            f"{row.last_good_status!r} from {seen}"
        )
        return Health(row.domain, row.last_good_status, text, verified=True)
    text = f"never verified and DNS incomplete ({'; '.join(problems)}): sending blocked"
    return Health(row.domain, "unknown", text, verified=False)


def _problems(report: DomainReport) -> list[str]:
    worst = [check for check in report.checks if check.status in ("fail", "unknown")]
    shown = worst or [check for check in report.checks if check.status == "warn"]
    return [f"{check.name}: {check.reason}" for check in shown]


def sending_problem(session: Session, now: datetime, settings: Settings, domain: str) -> str:
    """Why ``domain`` may not send now, or "" when it may (a warning does not stop it)."""
    try:
        row = verdict_for(session, now, settings, domain)
    except ValueError as exc:  # a malformed domain or resolver setting: nothing was checked
        return f"sending domain {domain!r} cannot be checked: {exc}"
    problem = paused_problem(session, row.domain)
    if problem:
        return problem
    health = health_of(row)
    if health.may_send:
        return ""
    return f"sending domain {row.domain} health {health.status}: {health.explanation}"


def paused_problem(session: Session, domain: str) -> str:
    """Why ``domain`` may not send because protection (or a person) paused it, or ""."""
    paused = session.get(SendingDomainPause, domain)  # written by sequencer.deliverability.protection
    return f"sending domain {domain} paused: {paused.reason}" if paused is not None and paused.paused else ""


def refresh_due(session: Session, now: datetime, settings: Settings) -> list[DomainCheck]:
    """Refresh every mailbox's sending domain whose verdict is missing or expired.

    Meant for a periodic task (the run loop or Celery beat), so a verdict is usually
    fresh before a touch needs it.
    """
    domains = set(session.exec(select(Mailbox.sending_domain)).all())
    return [verdict_for(session, now, settings, domain) for domain in sorted(domains) if domain]
