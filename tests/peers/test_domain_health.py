"""Cached domain verdicts and the send guard, against the loopback DNS server."""

# ruff: noqa: F811 - the imported dns_server fixture is meant to be shadowed by test arguments

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest_dns import (
    DOMAIN,
    dns_server,  # noqa: F401 - the fixture
    domain_zone,
    serve_healthy,
    settings_for,
)
from sqlalchemy import event
from sqlmodel import Session

from sequencer.core.config import Settings
from sequencer.core.db import make_engine, migrate
from sequencer.core.db import session as new_session
from sequencer.core.models import DomainCheck, Enrollment, Mailbox, Prospect
from sequencer.domains.checks import DomainReport
from sequencer.domains.health import (
    TTL_CEILING,
    TTL_FLOOR,
    cache_lifetime,
    domain_health_guard,
    health_of,
    refresh,
    refresh_due,
    verdict_for,
)
from sequencer.engine.guards import TouchContext
from sequencer.loopback.dns_server import DNSServer

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'health.db'}")
    migrate(engine)
    with new_session(engine) as db:
        yield db
    engine.dispose()


def touch(
    session: Session, settings: Settings, now: datetime, mailbox: Mailbox | None
) -> TouchContext:
    return TouchContext(
        session=session,
        now=now,
        settings=settings,
        enrollment=Enrollment(prospect_id=1, sequence_version_id=1, sequence_name="demo"),
        prospect=Prospect(email="pat@prospect.example"),
        account=None,
        step={"channel": "email"},
        channel="email",
        mailbox=mailbox,
    )


def mailbox(domain: str = DOMAIN) -> Mailbox:
    return Mailbox(address=f"sdr@{domain}", sending_domain=domain)


def test_refresh_stores_the_report_until_its_ttl(dns_server: DNSServer, session: Session) -> None:
    dns_server.add_zone(DOMAIN, domain_zone(), ttl=900, negative_ttl=900)
    settings = settings_for(dns_server, domain_blocklists=[], sending_ips=[])
    row = refresh(session, NOW, settings, "AcmeMail.com.")
    assert session.get(DomainCheck, DOMAIN) is row
    assert (row.status, row.checked_at, row.expires_at) == (
        "pass",
        NOW,
        NOW + timedelta(minutes=15),
    )
    assert (row.last_good_status, row.last_good_at) == ("pass", NOW)
    assert DomainReport.from_dict(row.report).min_ttl == 900


@pytest.mark.parametrize(
    ("status", "min_ttl", "lifetime"),
    [
        ("pass", 3600, timedelta(hours=1)),
        ("pass", 30, TTL_FLOOR),
        ("warn", 7 * 86400, TTL_CEILING),
        ("fail", None, TTL_FLOOR),
        ("unknown", 3600, TTL_FLOOR),
    ],
)
def test_cache_lifetime_is_the_min_ttl_within_bounds(
    status: str, min_ttl: int | None, lifetime: timedelta
) -> None:
    assert cache_lifetime(DomainReport(DOMAIN, status, [], min_ttl)) == lifetime


def test_cached_verdict_is_used_until_it_expires(dns_server: DNSServer, session: Session) -> None:
    serve_healthy(dns_server)
    settings = settings_for(dns_server)
    refresh(session, NOW, settings, DOMAIN)
    dns_server.add_zone(DOMAIN, domain_zone(spf=["v=spf1 +all"]))
    asked = len(dns_server.queries)

    cached = verdict_for(session, NOW + timedelta(minutes=4), settings, DOMAIN)
    assert (cached.status, cached.checked_at) == ("pass", NOW)
    assert len(dns_server.queries) == asked

    later = NOW + timedelta(minutes=5, seconds=1)
    fresh = verdict_for(session, later, settings, DOMAIN)
    assert (fresh.status, fresh.checked_at) == ("fail", later)
    assert len(dns_server.queries) > asked


def test_healthy_domain_may_send(dns_server: DNSServer, session: Session) -> None:
    serve_healthy(dns_server)
    settings = settings_for(dns_server)
    assert domain_health_guard(touch(session, settings, NOW, mailbox())).go


def test_warning_does_not_block(dns_server: DNSServer, session: Session) -> None:
    serve_healthy(dns_server, dmarc=["v=DMARC1; p=none"])
    settings = settings_for(dns_server)
    assert domain_health_guard(touch(session, settings, NOW, mailbox())).go
    assert session.get(DomainCheck, DOMAIN).status == "warn"


def test_failing_domain_defers_with_the_reasons(dns_server: DNSServer, session: Session) -> None:
    serve_healthy(dns_server, spf=["v=spf1 +all"], mx="0 .")
    settings = settings_for(dns_server)
    verdict = domain_health_guard(touch(session, settings, NOW, mailbox()))
    assert (verdict.action, verdict.guard, verdict.until) == (
        "defer",
        "domain_health",
        NOW + timedelta(minutes=5),
    )
    assert verdict.reason.startswith("sending domain acmemail.com health fail: ")
    assert "mx: acmemail.com publishes a null MX" in verdict.reason
    assert "spf: SPF ends in +all" in verdict.reason


def test_defer_lasts_at_most_an_hour(dns_server: DNSServer, session: Session) -> None:
    dns_server.add_zone(DOMAIN, domain_zone(mx=None), ttl=86400, negative_ttl=86400)
    settings = settings_for(dns_server, domain_blocklists=[], sending_ips=[])
    verdict = domain_health_guard(touch(session, settings, NOW, mailbox()))
    assert session.get(DomainCheck, DOMAIN).expires_at == NOW + timedelta(hours=24)
    assert (verdict.action, verdict.until) == ("defer", NOW + timedelta(hours=1))


def test_unknown_blocks_a_domain_never_verified(dns_server: DNSServer, session: Session) -> None:
    serve_healthy(dns_server)
    dns_server.fail_with_servfail(DOMAIN)
    settings = settings_for(dns_server)
    verdict = domain_health_guard(touch(session, settings, NOW, mailbox()))
    assert verdict.action == "defer"
    assert "health unknown: never verified and DNS incomplete" in verdict.reason
    assert "SERVFAIL" in verdict.reason
    row = session.get(DomainCheck, DOMAIN)
    assert (row.status, row.last_good_status, row.last_good_at) == ("unknown", "", None)


def test_unknown_keeps_the_last_good_verdict(dns_server: DNSServer, session: Session) -> None:
    serve_healthy(dns_server)
    settings = settings_for(dns_server)
    refresh(session, NOW, settings, DOMAIN)
    dns_server.never_answer(DOMAIN)
    later = NOW + timedelta(hours=1)
    row = verdict_for(session, later, settings_for(dns_server, dns_timeout=0.3), DOMAIN)
    assert (row.status, row.last_good_status, row.last_good_at) == ("unknown", "pass", NOW)
    health = health_of(row)
    assert (health.status, health.verified, health.may_send) == ("pass", True, True)
    assert "keeping the last verdict 'pass' from 2026-03-02T09:00:00+00:00" in health.explanation
    ctx = touch(session, settings, later + timedelta(minutes=1), mailbox())
    assert domain_health_guard(ctx).go


def test_unknown_keeps_a_last_failing_verdict(dns_server: DNSServer, session: Session) -> None:
    serve_healthy(dns_server, mx=None)
    settings = settings_for(dns_server)
    refresh(session, NOW, settings, DOMAIN)
    dns_server.fail_with_servfail(DOMAIN)
    later = NOW + timedelta(hours=1)
    verdict = domain_health_guard(touch(session, settings, later, mailbox()))
    assert verdict.action == "defer"
    assert "health fail: DNS incomplete now" in verdict.reason


def test_non_email_touch_passes_without_dns(dns_server: DNSServer, session: Session) -> None:
    settings = settings_for(dns_server)
    assert domain_health_guard(touch(session, settings, NOW, None)).go
    assert dns_server.queries == []


def test_unusable_domain_defers_with_the_error(dns_server: DNSServer, session: Session) -> None:
    settings = settings_for(dns_server)
    verdict = domain_health_guard(touch(session, settings, NOW, mailbox("not a domain")))
    assert verdict.action == "defer"
    assert "cannot be checked" in verdict.reason and "invalid domain" in verdict.reason


def test_refresh_due_checks_each_mailbox_domain_once(
    dns_server: DNSServer, session: Session
) -> None:
    serve_healthy(dns_server)
    session.add_all([mailbox(), Mailbox(address="b@acmemail.com", sending_domain=DOMAIN)])
    session.commit()
    settings = settings_for(dns_server)
    assert [row.domain for row in refresh_due(session, NOW, settings)] == [DOMAIN]
    asked = len(dns_server.queries)
    refresh_due(session, NOW + timedelta(minutes=1), settings)
    assert len(dns_server.queries) == asked


def test_refresh_racing_another_worker_updates_its_row(
    dns_server: DNSServer, session: Session
) -> None:
    """Another worker inserts the row between our read and our insert: we update theirs."""
    serve_healthy(dns_server)
    engine = session.get_bind()
    inserted: list[bool] = []

    def other_worker_inserts(flushing: Session, *_: object) -> None:
        if inserted:
            return
        inserted.append(True)
        with new_session(engine) as other:
            other.add(DomainCheck(domain=DOMAIN, status="fail", checked_at=NOW))
            other.commit()

    event.listen(session, "before_flush", other_worker_inserts)
    row = refresh(session, NOW, settings_for(dns_server), DOMAIN)
    assert inserted and (row.status, row.last_good_status) == ("pass", "pass")
    with new_session(engine) as other:
        assert other.get(DomainCheck, DOMAIN).status == "pass"
