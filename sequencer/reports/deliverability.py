"""The deliverability report: per mailbox and per sending domain, over a period.

Sent, delivered, bounces by type and reason with rates, the top status codes with an example
diagnostic, complaints, unsubscribes and the time from a mailed request to suppression,
replies, volume against the cap and warm-up stage by day, the latest domain checks and what
changed, DMARC aggregate results by source IP, and each mailbox's and domain's status now.

Every figure is a GROUP BY in the database over the period's rows (indexes: touch
(sent_at, mailbox_id), bounce.at, inboundmessage (kind, received_at)); Python only walks the
groups. Counting is ``sequencer.deliverability.counts``, the same as protection's.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, or_, true
from sqlmodel import Session, func, select

from sequencer.core.config import Settings
from sequencer.core.models import (
    Bounce,
    DmarcRecord,
    DmarcReport,
    DomainCheck,
    DomainCheckRecord,
    InboundMessage,
    Mailbox,
    Touch,
)
from sequencer.deliverability import protection
from sequencer.deliverability.counts import Counts, per_mailbox_day, rate
from sequencer.reports import SCHEMA_VERSION, sql
from sequencer.reports.period import Scope
from sequencer.sending import caps
from suppression.models import SuppressionEntry

TOP_CODES = 10
BOUNCE_TYPES = ("hard", "soft", "block")


def build(session: Session, now: datetime, settings: Settings, scope: Scope) -> dict[str, Any]:
    """The whole report as one JSON-ready document (schema ``deliverability``, version ``SCHEMA_VERSION``)."""
    limits = protection.thresholds(settings)
    query = select(Mailbox).order_by(Mailbox.address)
    if scope.mailbox_ids is not None:
        query = query.where(Mailbox.id.in_(scope.mailbox_ids))
    boxes = list(session.exec(query))
    # No filter: no id list either, so each scan reads the period's index range and nothing else.
    ids = None if scope.mailbox_ids is None else [box.id for box in boxes]
    domains = sorted({box.sending_domain for box in boxes})
    by_day = per_mailbox_day(session, scope.since, scope.until, ids)  # one scan: the daily table and the totals
    counts: dict[int, Counts] = defaultdict(Counts)
    for (mailbox_id, _), day_counts in by_day.items():
        counts[mailbox_id] += day_counts
    inbound = _inbound_by_mailbox(session, scope, ids)
    by_type = _bounces_by_type(session, scope, ids)
    everyone = list(session.exec(select(Mailbox).where(Mailbox.sending_domain.in_(domains))))
    box_status, domain_status = protection.statuses(session, now, limits, everyone)
    mailbox_rows = [_figures(counts.get(box.id, Counts()), inbound.get(box.id, {}), by_type.get(box.id, {}))
                    | {"address": box.address, "domain": box.sending_domain,
                       "status": box_status[box.id].level, "status_reason": box_status[box.id].reason}
                    for box in boxes]
    domain_rows = []
    for domain in domains:
        members = [box.id for box in boxes if box.sending_domain == domain]
        total = sum((counts.get(i, Counts()) for i in members), Counts())
        merged_inbound: dict[str, int] = defaultdict(int)
        merged_types: dict[str, int] = defaultdict(int)
        for i in members:
            for key, n in inbound.get(i, {}).items():
                merged_inbound[key] += n
            for key, n in by_type.get(i, {}).items():
                merged_types[key] += n
        domain_rows.append(_figures(total, merged_inbound, merged_types) | {
            "domain": domain, "mailboxes": len(members), "status": domain_status[domain].level,
            "status_reason": domain_status[domain].reason, "checks": domain_checks(session, domain),
            "dmarc": dmarc_sources(session, scope, domain, settings.sending_ips)})
    attempted = sum(row["attempted"] for row in mailbox_rows)
    document = {
        "schema": "deliverability", "version": SCHEMA_VERSION, "generated_at": now.isoformat(),
        "period": scope.to_dict(),
        "thresholds": {"complaint_warn": limits.complaint_warn, "complaint_pause": limits.complaint_pause,
                       "bounce_warn": limits.bounce_warn, "bounce_pause": limits.bounce_pause,
                       "min_sample": limits.min_sample, "window_days": limits.window_days},
        "totals": _figures(sum((counts[box.id] for box in boxes if box.id in counts), Counts()),
                           _sum_maps(inbound.values()), _sum_maps(by_type.values())),
        "mailboxes": mailbox_rows, "domains": domain_rows,
        "bounce_reasons": bounce_reasons(session, scope, ids, attempted),
        "status_codes": status_codes(session, scope, ids),
        "unsubscribes": unsubscribes(session, scope, ids),
        "daily": daily(by_day, boxes),
    }
    document["empty"] = not boxes or (attempted == 0 and not any(document["totals"][k] for k in (
        "bounces", "complaints", "replies", "unsubscribe_requests")))
    document["note"] = _note(scope, boxes) if document["empty"] else ""
    return document


def _note(scope: Scope, boxes: list[Mailbox]) -> str:
    span = f"between {scope.since:%Y-%m-%d %H:%M} and {scope.until:%Y-%m-%d %H:%M} UTC"
    if not boxes:
        return "no mailbox is configured (add one with `sequencer mailboxes add`): nothing to report"
    who = f"mailbox {scope.mailbox}" if scope.mailbox else f"domain {scope.domain}" if scope.domain else "any mailbox"
    return f"the report is empty: {who} sent no email {span}"


def _figures(counts: Counts, inbound: dict[str, int], types: dict[str, int]) -> dict[str, Any]:
    attempted = counts.attempted
    replies, unsubscribes = inbound.get("reply", 0), inbound.get("unsubscribe_request", 0)
    return {
        "sent": counts.sent, "refused": counts.refused, "attempted": attempted,
        "delivered": max(counts.sent - (counts.bounces - counts.refused), 0),
        "bounces": counts.bounces, "bounce_rate": _round(rate(counts.bounces, attempted)),
        "bounces_by_type": {kind: types.get(kind, 0) for kind in BOUNCE_TYPES},
        "complaints": counts.complaints, "complaint_rate": _round(rate(counts.complaints, attempted)),
        "replies": replies, "reply_rate": _round(rate(replies, counts.sent)),
        "unsubscribe_requests": unsubscribes,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _sum_maps(maps: Any) -> dict[str, int]:
    total: dict[str, int] = defaultdict(int)
    for one in maps:
        for key, n in one.items():
            total[key] += n
    return total


def _only(column: Any, ids: list[int] | None) -> Any:
    """``column IN ids``, or no condition at all when every mailbox is asked for."""
    return true() if ids is None else column.in_(ids)


def _inbound_by_mailbox(session: Session, scope: Scope, ids: list[int] | None) -> dict[int, dict[str, int]]:
    rows = session.exec(
        select(Touch.mailbox_id, InboundMessage.kind, func.count()).select_from(InboundMessage)
        .join(Touch, Touch.id == InboundMessage.touch_id)
        .where(InboundMessage.kind.in_(("reply", "unsubscribe_request")), InboundMessage.received_at >= scope.since,
               InboundMessage.received_at < scope.until, _only(Touch.mailbox_id, ids))
        .group_by(Touch.mailbox_id, InboundMessage.kind))
    found: dict[int, dict[str, int]] = defaultdict(dict)
    for mailbox_id, kind, n in rows:
        found[mailbox_id][kind] = n
    return found


def _bounce_filter(scope: Scope, ids: list[int] | None) -> Any:
    return and_(Bounce.at >= scope.since, Bounce.at < scope.until, _only(Bounce.mailbox_id, ids),
                Bounce.about_our_message.is_(False))


def _bounces_by_type(session: Session, scope: Scope, ids: list[int] | None) -> dict[int, dict[str, int]]:
    found: dict[int, dict[str, int]] = defaultdict(dict)
    for mailbox_id, kind, n in session.exec(select(Bounce.mailbox_id, Bounce.bounce_type, func.count())
                                            .where(_bounce_filter(scope, ids))
                                            .group_by(Bounce.mailbox_id, Bounce.bounce_type)):
        found[mailbox_id][kind or "unknown"] = n
    return found


def bounce_reasons(session: Session, scope: Scope, ids: list[int] | None, attempted: int) -> list[dict[str, Any]]:
    rows = session.exec(select(Bounce.bounce_type, Bounce.bounce_reason, func.count()).where(_bounce_filter(scope, ids))
                        .group_by(Bounce.bounce_type, Bounce.bounce_reason)
                        .order_by(func.count().desc(), Bounce.bounce_type, Bounce.bounce_reason))
    return [{"type": kind or "unknown", "reason": reason or "unclassified", "count": n,
             "rate": _round(rate(n, attempted))} for kind, reason, n in rows]


def status_codes(session: Session, scope: Scope, ids: list[int] | None) -> list[dict[str, Any]]:
    """The most frequent status codes, each with one of the servers' own diagnostics as an example."""
    rows = session.exec(select(Bounce.status_code, func.count(), func.max(Bounce.diagnostic))
                        .where(_bounce_filter(scope, ids)).group_by(Bounce.status_code)
                        .order_by(func.count().desc(), Bounce.status_code).limit(TOP_CODES))
    return [{"status_code": code or "(none)", "count": n, "example": example or ""} for code, n, example in rows]


def unsubscribes(session: Session, scope: Scope, ids: list[int] | None) -> dict[str, Any]:
    """Unsubscribes in the period, and how long a mailed request took to reach the suppression list.

    A one-click unsubscribe (RFC 8058) is suppressed in the request that makes it, so only the
    requests that came by mail have a delay to measure.
    """
    entries = select(func.count()).select_from(SuppressionEntry).where(
        SuppressionEntry.reason == "unsubscribed", SuppressionEntry.added_at >= scope.since,
        SuppressionEntry.added_at < scope.until)
    delay = sql.seconds_between(session, InboundMessage.received_at, SuppressionEntry.added_at)
    mailed = session.exec(
        select(func.count(), func.avg(delay), func.max(delay)).select_from(InboundMessage)
        .join(Touch, Touch.id == InboundMessage.touch_id)
        .join(SuppressionEntry, and_(SuppressionEntry.kind == "email", SuppressionEntry.value == Touch.recipient))
        .where(InboundMessage.kind == "unsubscribe_request", InboundMessage.received_at >= scope.since,
               InboundMessage.received_at < scope.until, _only(Touch.mailbox_id, ids))).one()
    count, mean, longest = mailed
    return {"suppressed": session.exec(entries).one() if scope.mailbox_ids is None else count,
            "mailed_requests_suppressed": count,
            "mean_seconds_to_suppression": None if mean is None else round(max(float(mean), 0.0), 1),
            "max_seconds_to_suppression": None if longest is None else round(max(float(longest), 0.0), 1)}


def daily(by_day: dict[tuple[int, str], Counts], boxes: list[Mailbox]) -> list[dict[str, Any]]:
    """Per mailbox and UTC day: sends against the day's cap and warm-up stage, bounces, complaints."""
    by_id = {box.id: box for box in boxes}
    rows = []
    for (mailbox_id, day), tally in sorted(by_day.items(), key=lambda item: (item[0][1], by_id[item[0][0]].address)):
        box = by_id[mailbox_id]
        on = date.fromisoformat(day)
        cap, label = caps.mailbox_daily_limit(box, on)
        stage = (on - box.warmup_started_on).days + 1 if box.warmup_start and box.warmup_started_on else None
        rows.append({"day": day, "mailbox": box.address, "sent": tally.sent, "refused": tally.refused,
                     "bounces": tally.bounces, "complaints": tally.complaints, "cap": cap, "cap_label": label,
                     "warmup_day": stage if stage is None or stage > 0 else None,
                     "cap_used": _round(rate(tally.sent, cap))})
    return rows


def domain_checks(session: Session, domain: str) -> dict[str, Any]:
    """The latest check of ``domain`` with its time, and what changed since the one before it."""
    records = list(session.exec(select(DomainCheckRecord).where(DomainCheckRecord.domain == domain)
                                .order_by(DomainCheckRecord.checked_at.desc(), DomainCheckRecord.id.desc()).limit(2)))
    if not records:
        current = session.get(DomainCheck, domain)
        if current is None:
            return {"checked_at": None, "status": "never checked", "checks": [], "previous_at": None, "changes": []}
        records = [DomainCheckRecord(domain=domain, status=current.status, checked_at=current.checked_at,
                                     report=current.report)]
    latest = records[0]
    checks = [{"name": c.get("name", ""), "status": c.get("status", ""), "reason": c.get("reason", "")}
              for c in (latest.report or {}).get("checks", [])]
    changes = []
    if len(records) == 2:
        before = {c.get("name", ""): c for c in (records[1].report or {}).get("checks", [])}
        for check in checks:
            was = before.get(check["name"], {}).get("status", "absent")
            if was != check["status"]:
                changes.append({"name": check["name"], "before": was, "after": check["status"],
                                "reason": check["reason"]})
    return {"checked_at": latest.checked_at.isoformat() if latest.checked_at else None, "status": latest.status,
            "checks": checks, "previous_at": records[1].checked_at.isoformat() if len(records) == 2 else None,
            "changes": changes}


def dmarc_sources(session: Session, scope: Scope, domain: str, ours: list[str]) -> list[dict[str, Any]]:
    """Per source IP, from the aggregate reports whose range starts in the period: messages, and how
    many passed aligned DKIM, aligned SPF, and DMARC (either)."""
    def passed(condition: Any) -> Any:
        return func.sum(case((condition, DmarcRecord.count), else_=0))

    rows = session.exec(
        select(DmarcRecord.source_ip, func.sum(DmarcRecord.count), passed(DmarcRecord.dkim == "pass"),
               passed(DmarcRecord.spf == "pass"), passed(or_(DmarcRecord.dkim == "pass", DmarcRecord.spf == "pass")),
               func.count(func.distinct(DmarcReport.org_name)))
        .join(DmarcReport, DmarcReport.id == DmarcRecord.dmarc_report_id)
        .where(DmarcReport.domain == domain, DmarcReport.begin_at >= scope.since - timedelta(days=1),
               DmarcReport.begin_at < scope.until)
        .group_by(DmarcRecord.source_ip).order_by(func.sum(DmarcRecord.count).desc(), DmarcRecord.source_ip))
    return [{"source_ip": ip, "messages": int(n or 0), "dkim_aligned_pass": int(dkim or 0),
             "spf_aligned_pass": int(spf or 0), "dmarc_pass": int(both or 0),
             "dmarc_pass_rate": _round(rate(int(both or 0), int(n or 0))), "reporters": reporters,
             "ours": ip in ours} for ip, n, dkim, spf, both, reporters in rows]
