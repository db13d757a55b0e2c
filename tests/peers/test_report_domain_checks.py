"""Each domain check is kept with its time, so the deliverability report shows the latest check
and what changed since the one before; against the loopback DNS server."""

# ruff: noqa: F811 - the imported dns_server fixture is meant to be shadowed by test arguments
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conftest_dns import DOMAIN, dns_server, serve_healthy, settings_for  # noqa: F401 - the fixture
from sqlmodel import Session, select

from sequencer.core.models import DomainCheckRecord, Mailbox
from sequencer.domains.health import refresh
from sequencer.loopback.dns_server import DNSServer
from sequencer.reports.deliverability import domain_checks

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_every_check_is_kept_and_the_change_is_shown(dns_server: DNSServer, session: Session) -> None:
    session.add(Mailbox(address=f"sdr@{DOMAIN}", sending_domain=DOMAIN))
    session.commit()
    serve_healthy(dns_server)
    refresh(session, NOW, settings_for(dns_server), DOMAIN)
    serve_healthy(dns_server, spf=["v=spf1 +all"])
    refresh(session, NOW + timedelta(hours=6), settings_for(dns_server), DOMAIN)

    kept = session.exec(select(DomainCheckRecord).order_by(DomainCheckRecord.checked_at)).all()
    assert [(r.status, r.checked_at) for r in kept] == [("pass", NOW), ("fail", NOW + timedelta(hours=6))]
    shown = domain_checks(session, DOMAIN)
    assert (shown["status"], shown["checked_at"], shown["previous_at"]) == (
        "fail", (NOW + timedelta(hours=6)).isoformat(), NOW.isoformat())
    assert [(c["name"], c["before"], c["after"]) for c in shown["changes"]] == [("spf", "pass", "fail")]
    assert "+all" in shown["changes"][0]["reason"]


def test_a_domain_never_checked_says_so(session: Session) -> None:
    assert domain_checks(session, "never.example")["status"] == "never checked"
