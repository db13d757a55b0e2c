"""A blocklist that cannot answer is not a listing: the refusal codes, against the loopback DNS server.

Asked through a public resolver, Spamhaus answers 127.255.255.254 (and URIBL 127.0.0.1) for
every name. That must be a warning naming the fix, and the domain's other checks decide
whether it may send: a refused list neither blocks a healthy domain nor clears a broken one.
"""

# ruff: noqa: F811 - the imported dns_server fixture is meant to be shadowed by test arguments

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest_dns import (
    DOMAIN,
    dns_server,  # noqa: F401 - the fixture
    serve_healthy,
    settings_for,
)
from sqlmodel import Session

from sequencer.core.db import make_engine, migrate
from sequencer.core.db import session as new_session
from sequencer.domains.checks import build_resolver, check_domain
from sequencer.domains.health import sending_problem
from sequencer.loopback.dns_server import DNSServer

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REVERSED_IP = "10.2.0.192"  # conftest_dns.SENDING_IP as an IP blocklist is asked


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'health.db'}")
    migrate(engine)
    with new_session(engine) as db:
        yield db
    engine.dispose()


def refusing_everywhere(server: DNSServer, domain_code: str = "127.255.255.254",
                        ip_code: str = "127.255.255.254") -> None:
    serve_healthy(server)
    server.add_zone("dbl.test", f"{DOMAIN} A {domain_code}\n")
    server.add_zone("zen.test", f"{REVERSED_IP} A {ip_code}\n")


@pytest.mark.parametrize("code", ["127.255.255.254", "127.255.255.255", "127.0.0.1"])
def test_a_refusing_public_resolver_does_not_block_a_healthy_domain(
    dns_server: DNSServer, session: Session, code: str
) -> None:
    refusing_everywhere(dns_server, code, code)
    settings = settings_for(dns_server)
    report = check_domain(DOMAIN, settings, build_resolver(settings))
    refused = {check.name: check for check in report.checks if check.name.startswith("blocklist:")}
    assert {check.status for check in refused.values()} == {"warn"}
    for check in refused.values():
        assert "not a listing" in check.reason
        assert "query it through your own resolver (dns_nameservers)" in check.reason
        assert check.detail["refused"] is True
    assert "drop dbl.test from the configured lists" in refused["blocklist:dbl.test"].reason
    assert report.status == "warn"
    assert sending_problem(session, NOW, settings, DOMAIN) == ""


def test_a_refused_list_does_not_clear_a_domain_another_check_fails(dns_server: DNSServer, session: Session) -> None:
    refusing_everywhere(dns_server)
    dns_server.add_zone(DOMAIN, "mx A 192.0.2.10\n")  # no MX, no SPF, no DKIM, no DMARC
    settings = settings_for(dns_server)
    problem = sending_problem(session, NOW, settings, DOMAIN)
    assert problem.startswith(f"sending domain {DOMAIN} health fail"), problem
    assert "mx:" in problem


def test_a_listing_on_another_list_still_fails(dns_server: DNSServer, session: Session) -> None:
    refusing_everywhere(dns_server, domain_code="127.255.255.254", ip_code="127.0.0.2")
    settings = settings_for(dns_server)
    report = check_domain(DOMAIN, settings, build_resolver(settings))
    assert report.status == "fail"
    problem = sending_problem(session, NOW, settings, DOMAIN)
    assert "listed on zen.test (return code 127.0.0.2)" in problem, problem


def test_a_listing_code_beside_a_refusal_code_is_a_listing(dns_server: DNSServer) -> None:
    serve_healthy(dns_server)
    dns_server.add_zone("dbl.test", f"{DOMAIN} A 127.0.1.2\n{DOMAIN} A 127.255.255.254\n")
    settings = settings_for(dns_server)
    checks = {c.name: c for c in check_domain(DOMAIN, settings, build_resolver(settings)).checks}
    assert checks["blocklist:dbl.test"].status == "fail"
    assert "return code 127.0.1.2" in checks["blocklist:dbl.test"].reason


def test_an_ip_query_on_a_domain_only_list_names_the_setting_to_move_it_to(dns_server: DNSServer) -> None:
    serve_healthy(dns_server)
    dns_server.add_zone("zen.test", f"{REVERSED_IP} A 127.0.1.255\n")
    settings = settings_for(dns_server)
    checks = {c.name: c for c in check_domain(DOMAIN, settings, build_resolver(settings)).checks}
    found = checks["blocklist:zen.test:192.0.2.10"]
    assert found.status == "warn"
    assert "move zen.test to domain_blocklists" in found.reason
