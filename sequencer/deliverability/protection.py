"""Automatic protection: a mailbox or sending domain whose complaint or bounce rate crosses a
pause threshold stops sending until a person resumes it.

The defaults follow the mailbox providers' published limits (Gmail and Yahoo's 2024 sender
rules: keep spam complaints under 0.1 %, never reach 0.3 %; a bounce rate above 2 % is a
warning sign, 5 % gets mail throttled). Nothing is judged on fewer than ``min_sample``
attempted sends: two complaints in the first ten emails say little. The window is the last
``window_days``, or since the mailbox or domain was last resumed, whichever is later, so a
resume starts a fresh count instead of pausing again on the figures that paused it.

A pause only stops new sends: the engine's mailbox choice (``sending.mailboxes.choose``) and
the domain verdict (``domains.health.sending_problem``) defer each touch with the reason,
so nothing is dropped and ``sequencer explain`` shows why.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, select

from sequencer.core import decisions
from sequencer.core.clock import as_utc
from sequencer.core.config import ConfigError, Settings
from sequencer.core.models import Mailbox, SendingDomainPause
from sequencer.deliverability.counts import Counts, per_mailbox, rate
from sequencer.sending import mailboxes
from suppression.normalize import normalize_domain

PROTECTION = "protection"  # paused_by of a pause made here
DEFAULTS = {"complaint_warn_percent": 0.1, "complaint_pause_percent": 0.3, "bounce_warn_percent": 2.0,
            "bounce_pause_percent": 5.0, "min_sample": 100, "window_days": 7}


@dataclass(frozen=True)
class Thresholds:
    complaint_warn: float  # shares (0.001 is 0.1 %)
    complaint_pause: float
    bounce_warn: float
    bounce_pause: float
    min_sample: int
    window_days: int


@dataclass(frozen=True)
class Status:
    level: str  # healthy | warning | paused
    reason: str


def thresholds(settings: Settings) -> Thresholds:
    """The ``[protection]`` table over the defaults; a ConfigError names the bad key."""
    where = f"{settings.source}: [protection]"
    values = dict(DEFAULTS)
    for key, value in (settings.protection or {}).items():
        if key not in DEFAULTS:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(DEFAULTS)})")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise ConfigError(f"{where}: {key} must be a number >= 0")
        values[key] = value
    for kind in ("complaint", "bounce"):
        if values[f"{kind}_warn_percent"] > values[f"{kind}_pause_percent"]:
            raise ConfigError(f"{where}: {kind}_warn_percent must not be above {kind}_pause_percent")
        if values[f"{kind}_pause_percent"] > 100:
            raise ConfigError(f"{where}: {kind}_pause_percent must be at most 100")
    for key in ("min_sample", "window_days"):
        if int(values[key]) != values[key] or values[key] < 1:
            raise ConfigError(f"{where}: {key} must be a whole number >= 1")
    return Thresholds(values["complaint_warn_percent"] / 100, values["complaint_pause_percent"] / 100,
                      values["bounce_warn_percent"] / 100, values["bounce_pause_percent"] / 100,
                      int(values["min_sample"]), int(values["window_days"]))


def judge(counts: Counts, limits: Thresholds) -> Status:
    """Healthy, warning or paused for these counts (pure): the worse of the two rates decides."""
    attempted = counts.attempted
    if attempted < limits.min_sample:
        return Status("healthy", f"{attempted} sends, fewer than the {limits.min_sample} needed to judge")
    found = []
    for name, n, warn, pause in (("complaint", counts.complaints, limits.complaint_warn, limits.complaint_pause),
                                 ("bounce", counts.bounces, limits.bounce_warn, limits.bounce_pause)):
        share = rate(n, attempted) or 0.0
        figure = f"{name} rate {share:.2%} ({n} of {attempted} sends)"
        if share >= pause > 0:
            found.append(("paused", f"{figure} reached the pause threshold {pause:.2%}"))
        elif share >= warn > 0:
            found.append(("warning", f"{figure} reached the warning threshold {warn:.2%}"))
    for level in ("paused", "warning"):
        reasons = [reason for found_level, reason in found if found_level == level]
        if reasons:
            return Status(level, "; ".join(reasons))
    return Status("healthy", f"complaint rate {rate(counts.complaints, attempted):.2%}, bounce rate "
                             f"{rate(counts.bounces, attempted):.2%} over {attempted} sends")


def window_start(now: datetime, limits: Thresholds, resumed_at: datetime | None) -> datetime:
    start = now - timedelta(days=limits.window_days)
    return max(start, as_utc(resumed_at)) if resumed_at is not None else start


def mailbox_status(session: Session, now: datetime, limits: Thresholds, mailbox: Mailbox) -> Status:
    if mailbox.paused:
        return Status("paused", mailbox.pause_reason or "paused by hand")
    since = window_start(now, limits, mailbox.resumed_at)
    return judge(per_mailbox(session, since, None, [mailbox.id]).get(mailbox.id, Counts()), limits)


def domain_status(session: Session, now: datetime, limits: Thresholds, domain: str) -> Status:
    """The domain judged on its mailboxes still sending, together, each counted from the later of
    its own and the domain's window start: a mailbox paused on its own figures does not pause
    the domain as well, and resuming one starts its count afresh for the domain too."""
    pause = session.get(SendingDomainPause, domain)
    if pause is not None and pause.paused:
        return Status("paused", pause.reason)
    boxes = list(session.exec(select(Mailbox).where(Mailbox.sending_domain == domain, Mailbox.paused.is_(False))))
    if not boxes:
        return Status("healthy", "no mailbox of the domain is sending")
    since = window_start(now, limits, pause.resumed_at if pause is not None else None)
    found = _counts(session, [(box, max(since, window_start(now, limits, box.resumed_at))) for box in boxes])
    return judge(sum(found.values(), Counts()), limits)


def _counts(session: Session, windows: list[tuple[Mailbox, datetime]]) -> dict[int, Counts]:
    """Each mailbox's counts from its own start: one grouped query per distinct start (all
    mailboxes share one unless some were resumed lately)."""
    by_start: dict[datetime, list[int]] = defaultdict(list)
    for mailbox, since in windows:
        by_start[since].append(mailbox.id)
    found: dict[int, Counts] = {}
    for since, ids in by_start.items():
        found.update(per_mailbox(session, since, None, ids))
    return found


def statuses(session: Session, now: datetime, limits: Thresholds,
             boxes: list[Mailbox]) -> tuple[dict[int, Status], dict[str, Status]]:
    """Every mailbox's and domain's status now, from one grouped query (for the reports)."""
    found = _counts(session, [(box, window_start(now, limits, box.resumed_at)) for box in boxes])
    by_box = {box.id: mailbox_status(session, now, limits, box) if box.paused
              else _not_yet(judge(found.get(box.id, Counts()), limits)) for box in boxes}
    by_domain = {}
    for domain in sorted({box.sending_domain for box in boxes}):
        pause = session.get(SendingDomainPause, domain)
        members = [box for box in boxes if box.sending_domain == domain and not box.paused]
        if (pause is not None and pause.paused) or (pause is not None and pause.resumed_at is not None) or not members:
            status = domain_status(session, now, limits, domain)
        else:  # no resume of the domain: its window is each mailbox's own, already counted
            status = judge(sum((found.get(box.id, Counts()) for box in members), Counts()), limits)
        by_domain[domain] = status if pause is not None and pause.paused else _not_yet(status)
    return by_box, by_domain


def _not_yet(status: Status) -> Status:
    """A mailbox or domain over a pause threshold that ``evaluate`` has not paused yet is a warning
    (a report must not call paused what still sends)."""
    if status.level != "paused":
        return status
    return Status("warning", f"{status.reason}: protection pauses it at its next run")


def evaluate(session: Session, now: datetime, settings: Settings) -> list[str]:
    """Pause every mailbox, then every domain, that crossed a pause threshold; say what was paused.

    Meant for the periodic chores (``sequencer.app.housekeeping``).
    """
    limits = thresholds(settings)
    boxes = list(session.exec(select(Mailbox).where(Mailbox.paused.is_(False)).order_by(Mailbox.id)))
    found = _counts(session, [(box, window_start(now, limits, box.resumed_at)) for box in boxes])
    done = []
    for mailbox in boxes:
        status = judge(found.get(mailbox.id, Counts()), limits)
        if status.level == "paused":
            _pause_mailbox(session, now, mailbox, status.reason)
            done.append(f"paused mailbox {mailbox.address}: {status.reason}")
    session.flush()
    for domain in sorted({m.sending_domain for m in boxes if m.sending_domain}):
        pause = session.get(SendingDomainPause, domain)
        if pause is not None and pause.paused:
            continue
        status = domain_status(session, now, limits, domain)
        if status.level == "paused":
            _pause_domain(session, now, domain, status.reason)
            done.append(f"paused domain {domain}: {status.reason}")
    session.commit()
    return done


def _pause_mailbox(session: Session, now: datetime, mailbox: Mailbox, why: str) -> None:
    mailbox.paused, mailbox.paused_at, mailbox.paused_by = True, now, PROTECTION
    mailbox.pause_reason = f"{why} (protection, {now:%Y-%m-%d %H:%M} UTC; `sequencer mailboxes resume` undoes it)"
    session.add(mailbox)
    decisions.record(session, now, "protection_paused", f"mailbox {mailbox.address}: {why}",
                     mailbox_id=mailbox.id, by=PROTECTION)


def _pause_domain(session: Session, now: datetime, domain: str, why: str) -> None:
    pause = session.get(SendingDomainPause, domain) or SendingDomainPause(domain=domain)
    pause.paused, pause.paused_at, pause.paused_by = True, now, PROTECTION
    pause.reason = f"{why} (protection, {now:%Y-%m-%d %H:%M} UTC; `sequencer mailboxes resume {domain}` undoes it)"
    session.add(pause)
    decisions.record(session, now, "protection_paused", f"domain {domain}: {why}", domain=domain, by=PROTECTION)


def resume_mailbox(session: Session, now: datetime, address: str, by: str) -> Mailbox:
    """Let a paused mailbox send again, recording who and when; raise ``MailboxError`` if unknown."""
    mailbox = mailboxes.require(session, address)
    was = mailbox.pause_reason
    mailbox.paused, mailbox.pause_reason = False, ""
    mailbox.resumed_at, mailbox.resumed_by = now, by
    session.add(mailbox)
    decisions.record(session, now, "resumed", f"mailbox {mailbox.address} resumed by {by}",
                     mailbox_id=mailbox.id, by=by, was=was)
    session.commit()
    return mailbox


def resume_domain(session: Session, now: datetime, domain: str, by: str) -> SendingDomainPause:
    """Let a paused sending domain send again; a ValueError names a domain that is not paused."""
    name = normalize_domain(domain)
    pause = session.get(SendingDomainPause, name)
    if pause is None or not pause.paused:
        raise ValueError(f"sending domain {name!r} is not paused")
    was = pause.reason
    pause.paused, pause.resumed_at, pause.resumed_by = False, now, by
    session.add(pause)
    decisions.record(session, now, "resumed", f"domain {name} resumed by {by}", domain=name, by=by, was=was)
    session.commit()
    return pause
