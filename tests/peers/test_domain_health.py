"""Cached domain verdicts and whether a domain may send, against the loopback DNS server.

``sending_problem`` is what the engine asks, through the mailbox choice; the cases that
need the choice around it (a retry within the hour, no mailbox at all) go through
``mailboxes.choose`` with the production ``sending_problem`` behind it.
"""

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
from sequencer.core.models import DomainCheck, Mailbox
from sequencer.domains.checks import DomainReport
from sequencer.domains.health import (
    TTL_CEILING,
    TTL_FLOOR,
    cache_lifetime,
    health_of,
    refresh,
    refresh_due,
    sending_problem,
    verdict_for,
)
from sequencer.loopback.dns_server import DNSServer
from sequencer.sending import mailboxes

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'health.db'}")
    migrate(engine)
    with new_session(engine) as db:
        yield db
    engine.dispose()


def choose(
    session: Session, settings: Settings, now: datetime, candidates: list[Mailbox]
) -> mailboxes.Choice:
    """The mailbox choice for one email to a prospect, asking the production ``sending_problem``."""
    return mailboxes.choose(
        session, now, settings, candidates, "prospect.example",
        lambda domain: sending_problem(session, now, settings, domain), fresh=True,
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
    assert sending_problem(session, NOW, settings, DOMAIN) == ""


def test_warning_does_not_block(dns_server: DNSServer, session: Session) -> None:
    serve_healthy(dns_server, dmarc=["v=DMARC1; p=none"])
    settings = settings_for(dns_server)
    assert sending_problem(session, NOW, settings, DOMAIN) == ""
    assert session.get(DomainCheck, DOMAIN).status == "warn"


def test_failing_domain_may_not_send_and_says_why(dns_server: DNSServer, session: Session) -> None:
    serve_healthy(dns_server, spf=["v=spf1 +all"], mx="0 .")
    settings = settings_for(dns_server)
    problem = sending_problem(session, NOW, settings, DOMAIN)
    assert problem.startswith("sending domain acmemail.com health fail: ")
    assert "mx: acmemail.com publishes a null MX" in problem
    assert "spf: SPF ends in +all" in problem
    # asked again when the verdict expires (the zone's 5-minute TTLs)
    assert session.get(DomainCheck, DOMAIN).expires_at == NOW + timedelta(minutes=5)


def test_a_failing_domain_is_looked_at_again_within_the_hour(
    dns_server: DNSServer, session: Session
) -> None:
    """The verdict is cached for a day (the TTLs say so), the mailbox is passed over for an hour."""
    dns_server.add_zone(DOMAIN, domain_zone(mx=None), ttl=86400, negative_ttl=86400)
    settings = settings_for(dns_server, domain_blocklists=[], sending_ips=[])
    choice = choose(session, settings, NOW, [mailbox()])
    assert session.get(DomainCheck, DOMAIN).expires_at == NOW + timedelta(hours=24)
    assert (choice.mailbox, choice.retry_at) == (None, NOW + timedelta(hours=1))
    [reason] = choice.reasons
    assert reason.startswith(f"sdr@{DOMAIN}: sending domain {DOMAIN} health fail: ")


def test_unknown_blocks_a_domain_never_verified(dns_server: DNSServer, session: Session) -> None:
    serve_healthy(dns_server)
    dns_server.fail_with_servfail(DOMAIN)
    settings = settings_for(dns_server)
    problem = sending_problem(session, NOW, settings, DOMAIN)
    assert "health unknown: never verified and DNS incomplete" in problem
    assert "SERVFAIL" in problem
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
    assert sending_problem(session, later + timedelta(minutes=1), settings, DOMAIN) == ""


def test_unknown_keeps_a_last_failing_verdict(dns_server: DNSServer, session: Session) -> None:
    serve_healthy(dns_server, mx=None)
    settings = settings_for(dns_server)
    refresh(session, NOW, settings, DOMAIN)
    dns_server.fail_with_servfail(DOMAIN)
    later = NOW + timedelta(hours=1)
    assert "health fail: DNS incomplete now" in sending_problem(session, later, settings, DOMAIN)


def test_no_mailbox_asks_no_dns(dns_server: DNSServer, session: Session) -> None:
    settings = settings_for(dns_server)
    choice = choose(session, settings, NOW, [])
    assert (choice.mailbox, choice.retry_at) == (None, NOW + timedelta(hours=1))
    assert choice.reasons[0].startswith("no mailbox configured")
    assert dns_server.queries == []


def test_unusable_domain_may_not_send_and_says_why(dns_server: DNSServer, session: Session) -> None:
    settings = settings_for(dns_server)
    problem = sending_problem(session, NOW, settings, "not a domain")
    assert "cannot be checked" in problem and "invalid domain" in problem
    assert dns_server.queries == []
    assert session.get(DomainCheck, "not a domain") is None


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
