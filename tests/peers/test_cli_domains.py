"""``sequencer domains check`` end to end: settings file, loopback DNS, SQLite cache."""

# ruff: noqa: F811 - the imported dns_server fixture is meant to be shadowed by test arguments

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from conftest_dns import (
    DOMAIN,
    PRIMARY,
    SELECTOR,
    dns_server,  # noqa: F401 - the fixture
    serve_healthy,
)
from typer.testing import CliRunner, Result

from sequencer.app.cli import domains
from sequencer.core.db import make_engine, migrate
from sequencer.core.db import session as new_session
from sequencer.core.models import DomainCheck
from sequencer.loopback.dns_server import DNSServer

cli = typer.Typer()
cli.add_typer(domains.app, name="domains")


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A config file naming a fresh SQLite database and the test blocklist zones."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    config = tmp_path / "sequencer.toml"
    config.write_text(
        f'database_url = "{url}"\nprimary_domain = "{PRIMARY}"\n'
        f'dkim_selector = "{SELECTOR}"\ndns_timeout = 0.5\n'
        'domain_blocklists = ["dbl.test"]\nip_blocklists = []\n'
    )
    monkeypatch.setenv("SEQUENCER_CONFIG", str(config))
    return url


def check(server: DNSServer, *args: str) -> Result:
    return CliRunner().invoke(
        cli, ["domains", "check", DOMAIN, "--nameserver", server.address, *args]
    )


def stored(url: str) -> DomainCheck | None:
    engine = make_engine(url)
    migrate(engine)
    with new_session(engine) as session:
        row = session.get(DomainCheck, DOMAIN)
    engine.dispose()
    return row


def test_healthy_domain_exits_zero_and_is_cached(dns_server: DNSServer, database: str) -> None:
    serve_healthy(dns_server)
    outcome = check(dns_server)
    assert outcome.exit_code == 0, outcome.output
    assert "acmemail.com: pass" in outcome.output
    assert "sending: may send (pass)" in outcome.output
    assert "no sending_ips configured" in outcome.output
    row = stored(database)
    assert row is not None and row.status == "pass"


def test_warning_exits_zero(dns_server: DNSServer, database: str) -> None:
    serve_healthy(dns_server, dmarc=["v=DMARC1; p=none"])
    outcome = check(dns_server)
    assert outcome.exit_code == 0, outcome.output
    assert "acmemail.com: warn" in outcome.output


def test_failure_exits_one_with_the_reason(dns_server: DNSServer, database: str) -> None:
    serve_healthy(dns_server, mx="0 .")
    outcome = check(dns_server)
    assert outcome.exit_code == 1, outcome.output
    assert "null MX" in outcome.output
    assert "may NOT send (fail)" in outcome.output


def test_unknown_exits_two_and_says_sending_is_blocked(
    dns_server: DNSServer, database: str
) -> None:
    serve_healthy(dns_server)
    dns_server.fail_with_servfail(DOMAIN)
    outcome = check(dns_server, "--json")
    assert outcome.exit_code == 2, outcome.output
    report = json.loads(outcome.output)
    assert report["status"] == "unknown"
    assert report["sending"].startswith("may NOT send (unknown): never verified")


def test_json_lists_every_check(dns_server: DNSServer, database: str) -> None:
    serve_healthy(dns_server)
    outcome = check(dns_server, "--json")
    assert outcome.exit_code == 0, outcome.output
    report = json.loads(outcome.output)
    assert report["domain"] == DOMAIN and report["min_ttl"] == 300
    assert [(c["name"], c["status"]) for c in report["checks"]] == [
        ("primary", "pass"),
        ("mx", "pass"),
        ("spf", "pass"),
        ("dkim", "pass"),
        ("dmarc", "pass"),
        ("blocklist:dbl.test", "pass"),
    ]


def test_other_selector_is_checked_but_not_cached(dns_server: DNSServer, database: str) -> None:
    serve_healthy(dns_server)
    outcome = check(dns_server, "--selector", "other", "--json")
    assert outcome.exit_code == 1, outcome.output
    report = json.loads(outcome.output)
    assert "other._domainkey.acmemail.com" in report["checks"][3]["reason"]
    assert report["sending"].startswith("not cached")
    assert stored(database) is None


def test_bad_nameserver_is_a_clear_error(database: str) -> None:
    outcome = CliRunner().invoke(
        cli, ["domains", "check", DOMAIN, "--nameserver", "resolver.example"]
    )
    assert outcome.exit_code == 2
    assert "nameserver 'resolver.example'" in outcome.output


def test_bad_domain_is_a_clear_error(database: str) -> None:
    outcome = CliRunner().invoke(cli, ["domains", "check", "not-a-domain"])
    assert outcome.exit_code == 2
    assert "invalid domain 'not-a-domain'" in outcome.output
