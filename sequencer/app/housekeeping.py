"""Periodic chores outside the send path: fresh domain verdicts, old cap counters gone."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from sequencer.core.config import Settings
from sequencer.domains import health
from sequencer.sending import caps


def run(session: Session, now: datetime, settings: Settings) -> list[str]:
    """Refresh expired sending-domain verdicts and drop counters of ended periods."""
    verdicts = health.refresh_due(session, now, settings)
    purged = caps.purge_expired(session, now.date())
    session.commit()
    return [f"{row.domain}: {row.status}" for row in verdicts] + ([f"{purged} old counters purged"] if purged else [])
