"""Domain health checks against a real authoritative DNS server on loopback."""

# ruff: noqa: F811 - the imported dns_server fixture is meant to be shadowed by test arguments

from __future__ import annotations

import pytest
from conftest_dns import (
    DOMAIN,
    dns_server,  # noqa: F401 - the fixture
    domain_zone,
    rsa_key,
    serve_healthy,
    settings_for,
    txt,
)

from sequencer.core.config import Settings
from sequencer.domains.checks import (
    DomainReport,
    build_resolver,
    check_domain,
    check_primary,
    parse_nameserver,
)
from sequencer.loopback.dns_server import DNSServer


def run(server: DNSServer, domain: str = DOMAIN, **overrides: object) -> DomainReport:
    settings = settings_for(server, **overrides)
    return check_domain(domain, settings, build_resolver(settings))


def result(report: DomainReport, name: str) -> tuple[str, str]:
    found = [check for check in report.checks if check.name == name]
    assert len(found) == 1, [check.name for check in report.checks]
    return found[0].status, found[0].reason


def test_healthy_domain_passes_every_check(dns_server: DNSServer) -> None:
    serve_healthy(dns_server)
    report = run(dns_server)
    assert report.status == "pass"
    assert {check.name: check.status for check in report.checks} == {
        "primary": "pass",
        "mx": "pass",
        "spf": "pass",
        "dkim": "pass",
        "dmarc": "pass",
        "blocklist:dbl.test": "pass",
        "blocklist:zen.test:192.0.2.10": "pass",
        "fcrdns:192.0.2.10": "pass",
    }
    assert report.min_ttl == 300
    assert DomainReport.from_dict(report.to_dict()) == report


def test_min_ttl_is_the_smallest_ttl_seen(dns_server: DNSServer) -> None:
    serve_healthy(dns_server, extra="@ 60 IN MX 20 mx\n")
    assert run(dns_server).min_ttl == 60


def test_negative_answers_count_towards_min_ttl(dns_server: DNSServer) -> None:
    dns_server.add_zone(DOMAIN, domain_zone())
    dns_server.add_zone("dbl.test", "", negative_ttl=120)
    report = run(dns_server, sending_ips=[])
    assert result(report, "blocklist:dbl.test")[0] == "pass"  # an NXDOMAIN answer
    assert report.status == "pass"
    assert report.min_ttl == 120


@pytest.mark.parametrize(
    ("domain", "primary", "status", "phrase"),
    [
        ("acme.com", "acme.com", "fail", "is the company's primary domain"),
        ("mail.acme.com", "acme.com", "fail", "is under the primary domain acme.com"),
        ("acme.co.uk", "mail.acme.co.uk", "fail", "is under the primary domain acme.co.uk"),
        ("acme.co.uk", "acme.com", "pass", "separate from the primary domain"),
        ("acmemail.com", "acme.com", "pass", "separate from the primary domain"),
        ("acmemail.com", "", "warn", "primary domain not configured"),
        ("acmemail.com", "not a domain", "warn", "setting primary_domain"),
    ],
)
def test_primary_domain_compares_registrable_domains(
    domain: str, primary: str, status: str, phrase: str
) -> None:
    found = check_primary(domain, primary)
    assert (found.status, phrase in found.reason) == (status, True), found.reason


def test_sending_from_the_primary_domain_fails_the_report(dns_server: DNSServer) -> None:
    serve_healthy(dns_server)
    report = run(dns_server, primary_domain=DOMAIN)
    assert report.status == "fail"
    assert result(report, "primary")[0] == "fail"


def test_null_mx_fails(dns_server: DNSServer) -> None:
    serve_healthy(dns_server, mx="0 .")
    status, reason = result(run(dns_server), "mx")
    assert status == "fail" and "null MX" in reason


def test_missing_mx_fails(dns_server: DNSServer) -> None:
    serve_healthy(dns_server, mx=None)
    status, reason = result(run(dns_server), "mx")
    assert status == "fail" and "no MX record" in reason


def test_domain_that_does_not_exist_fails(dns_server: DNSServer) -> None:
    serve_healthy(dns_server)
    report = run(dns_server, domain="gone.acmemail.com")
    assert result(report, "mx") == (
        "fail",
        "gone.acmemail.com does not exist in DNS (NXDOMAIN): register it or fix the name",
    )


def test_two_spf_records_fail(dns_server: DNSServer) -> None:
    serve_healthy(dns_server, spf=["v=spf1 ip4:192.0.2.10 -all", "v=spf1 mx -all"])
    status, reason = result(run(dns_server), "spf")
    assert status == "fail" and "2 SPF records" in reason


def test_missing_spf_fails_and_other_txt_is_ignored(dns_server: DNSServer) -> None:
    serve_healthy(dns_server, spf=["google-site-verification=abc", "v=spf10 -all"])
    status, reason = result(run(dns_server), "spf")
    assert status == "fail" and "no SPF record" in reason


def nested_includes(count: int) -> str:
    """An ``esp.net`` zone where ``_spf`` chains ``count - 1`` further includes."""
    lines = [f'_spf{i} TXT "v=spf1 include:_spf{i + 1}.esp.net ~all"' for i in range(count - 1)]
    lines.append(f'_spf{count - 1} TXT "v=spf1 ip4:198.51.100.0/24 ~all"')
    return "\n".join(lines) + "\n"


def test_eleven_lookups_through_nested_includes_fail(dns_server: DNSServer) -> None:
    serve_healthy(dns_server, spf=["v=spf1 include:_spf0.esp.net mx -all"])
    dns_server.add_zone("esp.net", nested_includes(10))
    status, reason = result(run(dns_server), "spf")
    assert status == "fail" and reason.startswith("11 DNS-lookup terms")


def test_ten_lookups_are_allowed(dns_server: DNSServer) -> None:
    serve_healthy(dns_server, spf=["v=spf1 include:_spf0.esp.net -all"])
    dns_server.add_zone("esp.net", nested_includes(10))
    assert result(run(dns_server), "spf") == (
        "pass",
        "one SPF record ending in -all, 10/10 DNS lookups",
    )


def test_more_than_two_void_lookups_fail(dns_server: DNSServer) -> None:
    spf = "v=spf1 a:nx1.acmemail.com a:nx2.acmemail.com mx:nx3.acmemail.com -all"
    serve_healthy(dns_server, spf=[spf])
    status, reason = result(run(dns_server), "spf")
    assert status == "fail" and reason.startswith("3 void lookups")


def test_two_void_lookups_are_allowed(dns_server: DNSServer) -> None:
    spf = "v=spf1 a:nx1.acmemail.com a:nx2.acmemail.com a:mx.acmemail.com mx -all"
    serve_healthy(dns_server, spf=[spf])
    assert result(run(dns_server), "spf")[0] == "pass"


@pytest.mark.parametrize(
    ("spf", "status", "phrase"),
    [
        ("v=spf1 ip4:192.0.2.10 +all", "fail", "+all"),
        ("v=spf1 ip4:192.0.2.10 all", "fail", "+all"),
        ("v=spf1 ip4:192.0.2.10 ?all", "warn", "?all"),
        ("v=spf1 ip4:192.0.2.10", "warn", "no final all"),
        ("v=spf1 ip4:192.0.2.10 ~all", "pass", "~all"),
        ("v=spf1 redirect=_spf.esp.net", "pass", "-all, 1/10"),
        ("v=spf1 include:none.esp.net -all", "fail", "include:none.esp.net has no SPF record"),
        ("v=spf1 include:nx.esp.net -all", "fail", "include:nx.esp.net has no SPF record"),
        ("v=spf1 include:loop.esp.net -all", "fail", "loops back"),
        ("v=spf1 ip4:192.0.2.10 bogus -all", "fail", "unknown term 'bogus'"),
        ("v=spf1 include -all", "fail", "without a domain"),
        ("v=spf1 exists:%{i}.esp.net include:%{d}.esp.net -all", "pass", "2/10"),
    ],
)
def test_spf_record_shapes(dns_server: DNSServer, spf: str, status: str, phrase: str) -> None:
    serve_healthy(dns_server, spf=[spf])
    dns_server.add_zone(
        "esp.net",
        '_spf TXT "v=spf1 ip4:198.51.100.0/24 -all"\n'
        'none TXT "not spf"\n'
        'loop TXT "v=spf1 include:loop2.esp.net -all"\n'
        'loop2 TXT "v=spf1 include:loop.esp.net -all"\n',
    )
    found, reason = result(run(dns_server), "spf")
    assert found == status and phrase in reason, reason


@pytest.mark.parametrize(
    ("dkim", "status", "phrase"),
    [
        ("", "fail", "no DKIM key at s1._domainkey.acmemail.com"),
        (f"v=DKIM1; k=rsa; p={rsa_key(512)}", "fail", "512-bit RSA key"),
        (f"v=DKIM1; k=rsa; p={rsa_key(1024)}", "warn", "1024-bit RSA key"),
        (f"v=DKIM1; p={rsa_key(2048)}", "pass", "2048-bit RSA key"),
        (f"v=DKIM1; k=rsa; p={rsa_key(4096)}", "pass", "4096-bit RSA key"),
        ("v=DKIM1; k=rsa; p=", "fail", "empty p= (key revoked)"),
        ("v=DKIM1; k=rsa; p=not*base64", "fail", "not valid base64"),
        ("v=DKIM1; k=rsa; p=AAAA", "fail", "not an RSA public key"),
        (f"k=rsa; p={rsa_key(2048)}", "fail", "lacks v=DKIM1"),
        ("v=DKIM1; k=ed25519; p=" + "A" * 43 + "=", "pass", "Ed25519"),
        ("v=DKIM1; k=ed25519; p=AAAA", "fail", "not 32 bytes"),
        ("v=DKIM1; k=dsa; p=AAAA", "fail", "unknown key type k=dsa"),
    ],
)
def test_dkim_key(dns_server: DNSServer, dkim: str, status: str, phrase: str) -> None:
    serve_healthy(dns_server, dkim=dkim)
    found, reason = result(run(dns_server), "dkim")
    assert found == status and phrase in reason, reason


def test_two_dkim_records_fail(dns_server: DNSServer) -> None:
    key = f"v=DKIM1; p={rsa_key(2048)}"
    serve_healthy(
        dns_server, extra=f's1._domainkey TXT {txt(key)}\ns1._domainkey TXT "v=DKIM1; p="\n'
    )
    dns_server.add_zone(
        DOMAIN,
        domain_zone(
            dkim="", extra=f's1._domainkey TXT {txt(key)}\ns1._domainkey TXT "v=DKIM1; p=AAAA"\n'
        ),
    )
    found, reason = result(run(dns_server), "dkim")
    assert found == "fail" and "2 DKIM records" in reason


def test_selector_argument_overrides_settings(dns_server: DNSServer) -> None:
    serve_healthy(dns_server)
    settings = settings_for(dns_server)
    report = check_domain(DOMAIN, settings, build_resolver(settings), selector="other")
    assert "no DKIM key at other._domainkey.acmemail.com" in result(report, "dkim")[1]


@pytest.mark.parametrize(
    ("dmarc", "status", "phrase"),
    [
        ([], "fail", "no DMARC record at _dmarc.acmemail.com"),
        (["v=DMARC1; p=reject", "v=DMARC1; p=none"], "fail", "2 DMARC records"),
        (["v=DMARC1; p=maybe"], "fail", "p=maybe at _dmarc.acmemail.com"),
        (["v=DMARC1; rua=mailto:d@acmemail.com"], "fail", "no p= tag"),
        (["v=DMARC1; p=none"], "warn", "p=none only monitors"),
        (["v=DMARC1; p=quarantine", "some other txt"], "pass", "p=quarantine"),
    ],
)
def test_dmarc_record(dns_server: DNSServer, dmarc: list[str], status: str, phrase: str) -> None:
    serve_healthy(dns_server, dmarc=dmarc)
    found, reason = result(run(dns_server), "dmarc")
    assert found == status and phrase in reason, reason


def subdomain_zone(dmarc_here: str = "", org_dmarc: str = "v=DMARC1; p=reject") -> str:
    """``mail.acmemail.com`` sends; the organisational domain holds DMARC."""
    key = f"v=DKIM1; p={rsa_key(2048)}"
    here = f"_dmarc.mail TXT {txt(dmarc_here)}\n" if dmarc_here else ""
    return (
        "mail MX 10 mx\nmx A 192.0.2.10\n"
        'mail TXT "v=spf1 ip4:192.0.2.10 -all"\n'
        f"s1._domainkey.mail TXT {txt(key)}\n"
        f"_dmarc TXT {txt(org_dmarc)}\n" + here
    )


@pytest.mark.parametrize(
    ("org_dmarc", "status", "phrase"),
    [
        ("v=DMARC1; p=reject", "pass", "p=reject (inherited from _dmarc.acmemail.com)"),
        ("v=DMARC1; p=reject; sp=none", "warn", "p=none (inherited"),
        ("v=DMARC1; p=none; sp=quarantine", "pass", "sp=quarantine (inherited"),
    ],
)
def test_dmarc_falls_back_to_the_organisational_domain(
    dns_server: DNSServer, org_dmarc: str, status: str, phrase: str
) -> None:
    dns_server.add_zone(DOMAIN, subdomain_zone(org_dmarc=org_dmarc))
    report = run(dns_server, domain="mail.acmemail.com", domain_blocklists=[], sending_ips=[])
    found, reason = result(report, "dmarc")
    assert found == status and phrase in reason, reason


def test_dmarc_of_the_subdomain_itself_wins(dns_server: DNSServer) -> None:
    dns_server.add_zone(DOMAIN, subdomain_zone(dmarc_here="v=DMARC1; p=none"))
    report = run(dns_server, domain="mail.acmemail.com", domain_blocklists=[], sending_ips=[])
    assert result(report, "dmarc") == (
        "warn",
        "p=none only monitors; move to quarantine once reports are clean",
    )


@pytest.mark.parametrize(
    ("code", "status", "phrase"),
    [
        ("127.0.1.2", "fail", "acmemail.com is listed on dbl.test (return code 127.0.1.2)"),
        ("127.255.255.254", "warn", "public or open resolver"),
        ("127.255.255.255", "warn", "too many queries"),
        ("127.255.255.252", "warn", "correct dbl.test in the configured lists"),
        ("127.255.255.200", "warn", "an error code about the query itself"),
        ("127.0.0.1", "warn", "query refused"),
        ("203.0.113.9", "warn", "query refused or rewritten"),
    ],
)
def test_domain_blocklist_return_codes(
    dns_server: DNSServer, code: str, status: str, phrase: str
) -> None:
    serve_healthy(dns_server)
    dns_server.add_zone("dbl.test", f"acmemail.com A {code}\n")
    report = run(dns_server)
    found, reason = result(report, "blocklist:dbl.test")
    assert found == status and phrase in reason, reason
    assert report.status == status


def test_ip_listed_on_zen_style_zone_fails(dns_server: DNSServer) -> None:
    serve_healthy(dns_server)
    dns_server.add_zone("zen.test", "10.2.0.192 A 127.0.0.2\n10.2.0.192 A 127.0.0.4\n")
    found, reason = result(run(dns_server), "blocklist:zen.test:192.0.2.10")
    assert found == "fail" and "return code 127.0.0.2, 127.0.0.4" in reason


def test_ipv6_sending_ip_is_queried_nibble_reversed(dns_server: DNSServer) -> None:
    serve_healthy(dns_server)
    reverse = ".".join(reversed("20010db8000000000000000000000001"))
    dns_server.add_zone("zen.test", f"{reverse} A 127.0.0.3\n")
    report = run(dns_server, sending_ips=["2001:db8::1"])
    assert result(report, "blocklist:zen.test:2001:db8::1")[0] == "fail"


def test_fcrdns_mismatch_fails(dns_server: DNSServer) -> None:
    serve_healthy(dns_server)
    dns_server.add_zone("2.0.192.in-addr.arpa", "10 PTR host.example.net.\n")
    dns_server.add_zone("example.net", "host A 198.51.100.7\n")
    found, reason = result(run(dns_server), "fcrdns:192.0.2.10")
    assert found == "fail"
    assert "192.0.2.10 -> host.example.net., which resolves to 198.51.100.7" in reason


def test_fcrdns_without_ptr_fails(dns_server: DNSServer) -> None:
    serve_healthy(dns_server)
    dns_server.add_zone("2.0.192.in-addr.arpa", "")
    found, reason = result(run(dns_server), "fcrdns:192.0.2.10")
    assert found == "fail" and "has no PTR record" in reason


def test_servfail_makes_the_check_unknown(dns_server: DNSServer) -> None:
    serve_healthy(dns_server)
    dns_server.fail_with_servfail("_dmarc.acmemail.com")
    report = run(dns_server)
    found, reason = result(report, "dmarc")
    assert found == "unknown" and "SERVFAIL" in reason
    assert report.status == "unknown"


def test_timeout_makes_the_check_unknown(dns_server: DNSServer) -> None:
    serve_healthy(dns_server)
    dns_server.never_answer("acmemail.com")
    report = run(dns_server, dns_timeout=0.3)
    found, reason = result(report, "mx")
    assert found == "unknown" and "timed out" in reason
    assert result(report, "spf")[0] == "unknown"
    assert report.status == "unknown"


def test_a_definite_failure_outranks_unknown(dns_server: DNSServer) -> None:
    serve_healthy(dns_server, mx="0 .")
    dns_server.fail_with_servfail("_dmarc.acmemail.com")
    assert run(dns_server).status == "fail"


def test_unreachable_nameserver_is_unknown(dns_server: DNSServer) -> None:
    serve_healthy(dns_server)
    dns_server.stop()
    report = run(dns_server, dns_timeout=0.2, domain_blocklists=[], sending_ips=[])
    assert report.status == "unknown"
    assert [check.status for check in report.checks] == ["pass"] + ["unknown"] * 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("::1", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
    ],
)
def test_parse_nameserver(text: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(text) == expected


@pytest.mark.parametrize("text", ["dns.google", "127.0.0.1:99999", "127.0.0.1:x", ""])
def test_parse_nameserver_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="nameserver"):
        parse_nameserver(text)


def test_build_resolver_uses_settings() -> None:
    resolver = build_resolver(Settings(dns_nameservers=["127.0.0.1:5353"], dns_timeout=0.5))
    assert [(ns.address, ns.port) for ns in resolver.nameservers] == [("127.0.0.1", 5353)]
    assert (resolver.timeout, resolver.lifetime) == (0.5, 0.5)
