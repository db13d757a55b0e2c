"""The pipeline report: does the program turn signals into held, accepted meetings, and at what cost.

Speed to lead (signal -> the first touch the person received: p50, p90, share within five
minutes, by signal type), touches per channel and step, reply rate per step and per A/B
variant with sample sizes and a significance note, the meeting funnel and its rates, and
cost per accepted meeting and per qualified meeting (SQL) when ``[costs]`` is configured.

Touch figures are GROUP BYs in the database over the period (percentiles too, by rank);
every meeting figure comes from ``sequencer.meetings.metrics``, the one definition.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import case, literal, union_all
from sqlmodel import Session, func, select

from channels.tasks import Task
from sequencer.core.config import ConfigError, Settings
from sequencer.core.models import Enrollment, InboundMessage, Signal, Touch
from sequencer.deliverability.counts import rate
from sequencer.meetings import metrics
from sequencer.meetings.acceptance import load_qualification
from sequencer.reports import SCHEMA_VERSION, sql
from sequencer.reports.period import Scope

FAST_LEAD_SECONDS = 300  # "within five minutes"
MIN_VARIANT_SAMPLE = 30  # sends per variant before a winner may be named
SIGNIFICANCE = 0.05
GROUPS = {"sdr": "sdr", "sequence": "sequence", "signal_source": "signal_type", "week": "week"}
DAYS_PER_MONTH = 365.25 / 12


def build(session: Session, now: datetime, settings: Settings, scope: Scope) -> dict[str, Any]:
    """The whole report as one JSON-ready document (schema ``pipeline``, version ``SCHEMA_VERSION``)."""
    leads, spread = speed_to_lead(session, scope)
    steps = touches_by_step(session, scope)
    meetings = meeting_funnel(session, now, settings, scope)
    document = {
        "schema": "pipeline", "version": SCHEMA_VERSION, "generated_at": now.isoformat(), "period": scope.to_dict(),
        "speed_to_lead": leads, "lead_distribution": spread,
        "steps": steps, "ab_tests": ab_tests(steps), "meetings": meetings,
        "cost": cost(settings, scope, meetings),
    }
    document["empty"] = not leads and not steps and not meetings["groups"]["all"]
    document["note"] = (f"the report is empty: no touch was sent and no meeting was held between "
                        f"{scope.since:%Y-%m-%d %H:%M} and {scope.until:%Y-%m-%d %H:%M} UTC"
                        if document["empty"] else "")
    return document


def _in_scope(query: Any, scope: Scope) -> Any:
    query = query.where(Touch.sent_at >= scope.since, Touch.sent_at < scope.until)
    return query.where(Touch.mailbox_id.in_(scope.mailbox_ids)) if scope.mailbox_ids is not None else query


LEAD_BUCKETS = ((60, "under 1 min"), (300, "1-5 min"), (900, "5-15 min"), (3600, "15-60 min"),
                (14400, "1-4 h"), (86400, "4-24 h"), (None, "over 24 h"))


def first_touches(scope: Scope | None = None, enrollment_id: int | None = None) -> Any:
    """(enrollment_id, first_at) of each enrollment's first touch a person got — the one definition,
    for the report and the demo: an email when it was sent, a call, LinkedIn or manual step when the
    SDR did it (its task closed done). A task still in the queue touched nobody, and neither did an
    email that never left (unknown, failed, blocked)."""
    emails = (select(Touch.enrollment_id.label("enrollment_id"), Touch.sent_at.label("at"))
              .where(Touch.step_index >= 0, Touch.state == "sent", Touch.sent_at.is_not(None)))
    done = (select(Touch.enrollment_id.label("enrollment_id"), Task.completed_at.label("at"))
            .join(Task, Task.touch_id == Touch.id)
            .where(Touch.step_index >= 0, Task.state == "done", Task.completed_at.is_not(None)))
    if scope is not None:
        emails = _in_scope(emails, scope)
        done = done.where(Task.completed_at >= scope.since, Task.completed_at < scope.until)
        if scope.mailbox_ids is not None:
            done = done.where(Touch.mailbox_id.in_(scope.mailbox_ids))
    if enrollment_id is not None:
        emails = emails.where(Touch.enrollment_id == enrollment_id)
        done = done.where(Touch.enrollment_id == enrollment_id)
    moments = union_all(emails, done).subquery()
    return (select(moments.c.enrollment_id, func.min(moments.c.at).label("first_at"))
            .group_by(moments.c.enrollment_id))


def first_touch_at(session: Session, enrollment_id: int) -> datetime | None:
    """When the enrollment's person was first touched (``first_touches``), or None."""
    row = session.exec(first_touches(enrollment_id=enrollment_id)).first()
    return row[1] if row else None


def speed_to_lead(session: Session, scope: Scope) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per signal type, for signals in the period whose first touch came in it too; and how many
    leads were first touched within each span (the histogram of the HTML page). One query.

    A signal in the period has its first touch after ``since``, so the first touch of its
    enrollment among the period's touches is its first touch at all.
    """
    first = first_touches(scope).subquery()
    lead = sql.seconds_between(session, Signal.occurred_at, first.c.first_at)
    leads = (select(Signal.type.label("type"), lead.label("lead"))
             .select_from(first).join(Enrollment, Enrollment.id == first.c.enrollment_id)
             .join(Signal, Signal.id == Enrollment.signal_id)
             .where(Signal.occurred_at >= scope.since, Signal.occurred_at < scope.until)).subquery()
    ranked = select(leads.c.type, leads.c.lead,
                    func.row_number().over(partition_by=leads.c.type, order_by=leads.c.lead).label("rank"),
                    func.count().over(partition_by=leads.c.type).label("n")).subquery()
    spans = [func.sum(case((ranked.c.lead < literal(limit), 1), else_=0)) for limit, _ in LEAD_BUCKETS if limit]
    rows = list(session.exec(select(
        ranked.c.type, ranked.c.n, sql.nearest_rank(ranked.c.rank, ranked.c.n, 0.5, ranked.c.lead),
        sql.nearest_rank(ranked.c.rank, ranked.c.n, 0.9, ranked.c.lead),
        func.sum(case((ranked.c.lead <= literal(FAST_LEAD_SECONDS), 1), else_=0)), *spans)
        .group_by(ranked.c.type, ranked.c.n).order_by(ranked.c.type)))
    by_type = [{"signal_type": kind, "leads": n, "p50_seconds": _seconds(p50), "p90_seconds": _seconds(p90),
                "within_5_minutes": int(fast or 0), "within_5_minutes_share": _round(rate(int(fast or 0), n))}
               for kind, n, p50, p90, fast, *_ in rows]
    below = [sum(int(row[5 + i] or 0) for row in rows) for i in range(len(LEAD_BUCKETS) - 1)]  # leads under each
    total = sum(row[1] for row in rows)
    counts = [b - a for a, b in zip([0, *below], [*below, total], strict=True)]
    return by_type, [{"span": label, "leads": n} for (_, label), n in zip(LEAD_BUCKETS, counts, strict=True)]


def touches_by_step(session: Session, scope: Scope) -> list[dict[str, Any]]:
    """Per sequence, step, channel and variant: touches sent and replies to them, with the rate."""
    keys = (Enrollment.sequence_name, Touch.step_index, Touch.step_id, Touch.channel, Touch.variant)
    sent = session.exec(_in_scope(select(*keys, func.count()).select_from(Touch)
                                  .join(Enrollment, Enrollment.id == Touch.enrollment_id), scope).group_by(*keys))
    replied = select(*keys, func.count()).select_from(InboundMessage).join(
        Touch, Touch.id == InboundMessage.touch_id).join(Enrollment, Enrollment.id == Touch.enrollment_id).where(
        InboundMessage.kind == "reply", InboundMessage.received_at >= scope.since,
        InboundMessage.received_at < scope.until)
    if scope.mailbox_ids is not None:
        replied = replied.where(Touch.mailbox_id.in_(scope.mailbox_ids))
    replies = {tuple(row[:-1]): row[-1] for row in session.exec(replied.group_by(*keys))}
    rows = []
    for *key, n in sorted(sent, key=lambda row: (row[0], row[1], row[4])):
        got = replies.get(tuple(key), 0)
        sequence, index, step_id, channel, variant = key
        rows.append({"sequence": sequence, "step": index + 1, "step_id": step_id, "channel": channel,
                     "variant": variant or "", "touches": n, "replies": got, "reply_rate": _round(rate(got, n))})
    return rows


def ab_tests(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Steps with two or more variants: the leader, and whether its lead is significant.

    A two-proportion z-test of the leader against the runner-up (normal approximation); a
    winner is named only when both have ``MIN_VARIANT_SAMPLE`` sends and p < ``SIGNIFICANCE``.
    """
    by_step: dict[tuple, list[dict]] = defaultdict(list)
    for row in steps:
        if row["variant"]:
            by_step[row["sequence"], row["step"], row["step_id"]].append(row)
    tests = []
    for (sequence, step, step_id), variants in sorted(by_step.items()):
        if len(variants) < 2:
            continue
        ordered = sorted(variants, key=lambda v: (-(v["reply_rate"] or 0.0), v["variant"]))
        lead, runner = ordered[0], ordered[1]
        p = two_proportion_p(lead["replies"], lead["touches"], runner["replies"], runner["touches"])
        small = min(lead["touches"], runner["touches"]) < MIN_VARIANT_SAMPLE
        if small:
            note = f"no winner yet: fewer than {MIN_VARIANT_SAMPLE} sends for a variant"
        elif p is None or p >= SIGNIFICANCE:
            note = f"no winner yet: the difference is not significant (p = {p:.2f})" if p is not None else \
                "no winner yet: no replies to compare"
        else:
            note = f"{lead['variant']} wins: {lead['reply_rate']:.1%} vs {runner['reply_rate']:.1%} (p = {p:.3f})"
        tests.append({"sequence": sequence, "step": step, "step_id": step_id,
                      "variants": [{k: v[k] for k in ("variant", "touches", "replies", "reply_rate")} for v in ordered],
                      "leader": lead["variant"], "p_value": _round(p), "winner": None if small or p is None
                      or p >= SIGNIFICANCE else lead["variant"], "note": note})
    return tests


def two_proportion_p(x1: int, n1: int, x2: int, n2: int) -> float | None:
    """Two-sided p-value that two reply rates differ; None when it cannot be computed."""
    if n1 <= 0 or n2 <= 0:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if spread == 0:
        return None
    z = abs(x1 / n1 - x2 / n2) / spread
    return math.erfc(z / math.sqrt(2))


def meeting_funnel(session: Session, now: datetime, settings: Settings, scope: Scope) -> dict[str, Any]:
    """Meetings by state, show rate, no-shows by fault, acceptance, rejections, qualified: overall and
    by SDR, sequence, signal source and week, each straight from ``sequencer.meetings.metrics``."""
    minimum = load_qualification(settings).minimum_minutes
    window = settings.meeting_acceptance_days
    since, until = scope.since, scope.until
    groups = {}
    for name, by in {"all": None, **GROUPS}.items():
        states = metrics.by_state(session, by, since, until)
        shows = metrics.show_rate(session, now, by, since, until)
        faults = metrics.no_shows_by_fault(session, by, since, until)
        accepted = metrics.acceptance_rate(session, window, by, since, until)
        rejected = metrics.rejections_by_reason(session, by, since, until)
        qualified = metrics.qualified_held(session, minimum, by, since, until)
        groups[name] = [{
            "group": key, "scheduled": sum(states[key].values()), "by_state": states[key],
            "held": states[key].get("held", 0), "no_shows_by_fault": faults.get(key, {}),
            "canceled": states[key].get("canceled", 0),
            "show_rate": _rate_of(shows.get(key)), "show_sample": shows[key].denominator if key in shows else 0,
            "accepted": accepted[key].numerator if key in accepted else 0,
            "acceptance_rate": _rate_of(accepted.get(key)), "rejections": rejected.get(key, {}),
            "qualified": qualified.get(key, 0)} for key in states]
    return {"groups": groups}


def _rate_of(found: metrics.Rate | None) -> float | None:
    return None if found is None else _round(found.value)


def cost(settings: Settings, scope: Scope, meetings: dict[str, Any]) -> dict[str, Any] | None:
    """Cost per accepted meeting and per qualified one (SQL), when ``[costs]`` says what a month costs.

    ``per_month`` (the program), ``[costs.sdr]`` (each SDR, by address) and ``[costs.partner]``
    (each data or agency partner) are monthly amounts, prorated to the period's length.
    """
    table = settings.costs or {}
    if not table:
        return None
    unknown = set(table) - {"per_month", "sdr", "partner", "currency"}
    if unknown:
        raise ConfigError(f"{settings.source}: [costs]: unknown key {sorted(unknown)[0]!r} "
                          "(known: per_month, sdr, partner, currency)")
    months = scope.days / DAYS_PER_MONTH
    sdr = _amounts(settings, table.get("sdr", {}), "sdr")
    partner = _amounts(settings, table.get("partner", {}), "partner")
    base = _amount(settings, table.get("per_month", 0), "per_month")
    total = (base + sum(sdr.values()) + sum(partner.values())) * months
    everyone = (meetings["groups"]["all"] or [{"accepted": 0, "qualified": 0}])[0]
    per_sdr = []
    for row in meetings["groups"]["sdr"]:
        if row["group"] in sdr:
            spent = sdr[row["group"]] * months
            per_sdr.append({"sdr": row["group"], "cost": round(spent, 2),
                            "per_accepted_meeting": _per(spent, row["accepted"]),
                            "per_sql": _per(spent, row["qualified"])})
    return {"currency": str(table.get("currency", "")), "months": round(months, 3), "total": round(total, 2),
            "per_accepted_meeting": _per(total, everyone["accepted"]), "per_sql": _per(total, everyone["qualified"]),
            "by_sdr": per_sdr}


def _amounts(settings: Settings, values: Any, name: str) -> dict[str, float]:
    if not isinstance(values, dict):
        raise ConfigError(f"{settings.source}: [costs.{name}] must be a table of name = amount per month")
    return {str(key).lower(): _amount(settings, value, f"{name}.{key}") for key, value in values.items()}


def _amount(settings: Settings, value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{settings.source}: [costs]: {name} must be an amount >= 0")
    return float(value)


def _per(spent: float, n: int) -> float | None:
    return round(spent / n, 2) if n > 0 else None


def _seconds(value: Any) -> float | None:
    return None if value is None else round(max(float(value), 0.0), 1)


def _round(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 6)
