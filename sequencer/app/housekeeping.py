"""Periodic chores outside the send path: fresh domain verdicts, old cap counters gone, protection."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from sequencer.core.config import Settings
from sequencer.deliverability import protection
from sequencer.domains import health
from sequencer.sending import caps


def run(session: Session, now: datetime, settings: Settings) -> list[str]:
    """Refresh expired sending-domain verdicts, drop counters of ended periods, and pause a mailbox or
    domain whose complaint or bounce rate crossed its threshold (``deliverability.protection``)."""
    verdicts = health.refresh_due(session, now, settings)
    purged = caps.purge_expired(session, now.date())
    session.commit()
    paused = protection.evaluate(session, now, settings)
    return ([f"{row.domain}: {row.status}" for row in verdicts] + ([f"{purged} old counters purged"] if purged else [])
            + paused)
