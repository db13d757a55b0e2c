"""Housekeeping: expired domain verdicts are refreshed, counters of ended periods dropped."""

from __future__ import annotations

from datetime import timedelta

from conftest_dns import DOMAIN, dns_server, serve_healthy, settings_for  # noqa: F401
from sqlmodel import select

from sequencer.app import housekeeping
from sequencer.core.models import CapCounter, DomainCheck, Mailbox


def test_housekeeping_refreshes_mailbox_domains_and_purges_old_counters(session, clock, dns_server):  # noqa: F811
    serve_healthy(dns_server)
    settings = settings_for(dns_server)
    session.add(Mailbox(address=f"sam@{DOMAIN}", sending_domain=DOMAIN))
    today = clock.now().date()
    session.add(CapCounter(key="mailbox:1:old", used=3, expires_on=today - timedelta(days=1)))
    session.add(CapCounter(key="mailbox:1:today", used=2, expires_on=today))
    session.commit()

    done = housekeeping.run(session, clock.now(), settings)

    assert done == [f"{DOMAIN}: pass", "1 old counters purged"]
    assert session.get(DomainCheck, DOMAIN).status == "pass"
    assert [c.key for c in session.exec(select(CapCounter))] == ["mailbox:1:today"]
    asked = len(dns_server.queries)
    assert housekeeping.run(session, clock.now(), settings) == [f"{DOMAIN}: pass"]
    assert len(dns_server.queries) == asked  # the verdict is still fresh: DNS is not asked again
