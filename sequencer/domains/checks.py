"""Health checks of a sending domain over DNS: may mail go out from it?

Each check answers pass, warn, fail or unknown with a reason a person can act on.
"unknown" means DNS did not give a usable answer (timeout, SERVFAIL): it is never read
as "fine" or as "listed". A blocklist that refuses the query is a warning naming the fix
(``check_listed``): it says nothing about the domain either way. The checks are pure
over an injected ``dns.resolver.Resolver`` so tests point them at a loopback server
and users at their own resolver; caching and the sending verdict live in ``health``.

Domains are spelled and cut to their registrable part by ``suppression.normalize``, the
one normaliser every stored or compared domain goes through.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.resolver
import dns.reversename
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from sequencer.core.config import Settings
from sequencer.domains.spf import evaluate_spf
from suppression.normalize import normalize_domain, registrable_domain

SEVERITY = {"pass": 0, "warn": 1, "unknown": 2, "fail": 3}
DMARC_POLICIES = ("none", "quarantine", "reject")
# A blocklist that cannot answer is not a listing. These are the vendors' documented "your query
# was not answered" codes (Spamhaus: 127.255.255.0/24 is its error range and never a reputation;
# URIBL and SURBL answer 127.0.0.1 to a refused query, a bit no listing uses). The fix is on our
# side, so each names it; the domain's other checks decide whether it may send.
_OWN_RESOLVER = "query it through your own resolver (dns_nameservers), or drop {zone} from the configured lists"
BLOCKLIST_ERRORS = {
    "127.255.255.252": ("the blocklist name is misspelt", "correct {zone} in the configured lists, or drop it"),
    "127.255.255.254": ("queried through a public or open resolver", _OWN_RESOLVER),
    "127.255.255.255": ("too many queries from this resolver", _OWN_RESOLVER),
    "127.0.1.255": ("this list takes domains only (Spamhaus DBL)", "move {zone} to domain_blocklists"),
    "127.0.0.1": ("query refused (URIBL/SURBL: public resolver or over the free quota)", _OWN_RESOLVER),
}
_ERROR_RANGE = ipaddress.ip_network("127.255.255.0/24")  # Spamhaus: errors about the query itself
_UNEXPLAINED = ("query refused or rewritten (an answer no list gives)", _OWN_RESOLVER)


class DNSUnavailable(Exception):
    """DNS gave no usable answer (timeout, SERVFAIL, REFUSED): the result is unknown."""


@dataclass
class CheckResult:
    name: str
    status: str  # pass | warn | fail | unknown
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class DomainReport:
    """All check results for one domain; ``status`` is the worst of them.

    Severity runs pass < warn < unknown < fail: one definite failure outweighs checks
    that could not be completed. ``min_ttl`` is the smallest TTL among the answers
    seen (None when DNS answered nothing), which bounds how long the verdict may be
    cached.
    """

    domain: str
    status: str
    checks: list[CheckResult]
    min_ttl: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DomainReport:
        checks = [CheckResult(**check) for check in data.get("checks", [])]
        return cls(data["domain"], data["status"], checks, data.get("min_ttl"))


class Lookups:
    """The only way the checks reach DNS: text answers, TTL bookkeeping, clear errors.

    Calling it returns the records of a name as text, an empty list for NXDOMAIN or
    no data (remembering which names did not exist), and raises ``DNSUnavailable``
    when the resolver could not get an authoritative answer.
    """

    def __init__(self, resolver: dns.resolver.Resolver) -> None:
        self.resolver = resolver
        self.min_ttl: int | None = None
        self.nxdomain: set[str] = set()

    def __call__(self, name: str, rdtype: str) -> list[str]:
        try:
            qname = dns.name.from_text(name)
        except dns.exception.DNSException:
            self.nxdomain.add(name)  # a name that cannot be written cannot exist either
            return []
        try:
            answer = self.resolver.resolve(qname, rdtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN as exc:
            self.nxdomain.add(name)
            for response in exc.responses().values():
                self._saw(response.resolve_chaining().minimum_ttl)
            return []
        except dns.exception.Timeout as exc:
            raise DNSUnavailable(f"no answer for {name} {rdtype} (timed out: {exc})") from exc
        except dns.exception.DNSException as exc:
            raise DNSUnavailable(f"DNS lookup of {name} {rdtype} failed: {exc}") from exc
        self._saw(answer.chaining_result.minimum_ttl)
        if answer.rrset is None:
            return []
        if rdtype == "TXT":
            return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer.rrset]
        return [rdata.to_text() for rdata in answer.rrset]

    def _saw(self, ttl: int) -> None:
        self.min_ttl = ttl if self.min_ttl is None else min(self.min_ttl, ttl)


def parse_nameserver(text: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, "53"
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        raise ValueError(
            f"nameserver {text!r}: expected an IP address with optional :port"
        ) from None
    if not 0 < number < 65536:
        raise ValueError(f"nameserver {text!r}: port {number} out of range")
    return host, number


def build_resolver(settings: Settings) -> dns.resolver.Resolver:
    """A resolver for ``settings.dns_nameservers``, or the system's when none are set.

    One attempt per query, bounded by ``settings.dns_timeout``: a check that cannot
    get an answer in time reports "unknown" instead of holding up the send loop.
    """
    if settings.dns_nameservers:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver(*parse_nameserver(entry))
            for entry in settings.dns_nameservers
        ]
    else:
        try:
            resolver = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration as exc:
            raise ValueError("no usable /etc/resolv.conf: set dns_nameservers") from exc
    resolver.timeout = settings.dns_timeout
    resolver.lifetime = settings.dns_timeout
    resolver.cache = None
    return resolver


def check_domain(
    domain: str, settings: Settings, resolver: dns.resolver.Resolver, selector: str | None = None
) -> DomainReport:
    """Run every check for ``domain``; DNS trouble makes single checks unknown."""
    domain = normalize_domain(domain)
    lookups = Lookups(resolver)
    selector = selector or settings.dkim_selector
    checks = [check_primary(domain, settings.primary_domain)]
    checks += [
        _guarded("mx", check_mx, lookups, domain),
        _guarded("spf", check_spf, lookups, domain),
        _guarded("dkim", check_dkim, lookups, domain, selector),
        _guarded("dmarc", check_dmarc, lookups, domain),
    ]
    for zone in settings.domain_blocklists:
        name = f"blocklist:{zone}"
        checks.append(_guarded(name, check_listed, lookups, name, domain, zone))
    for ip in settings.sending_ips:
        for zone in settings.ip_blocklists:
            name = f"blocklist:{zone}:{ip}"
            checks.append(_guarded(name, check_listed, lookups, name, ip, zone))
        checks.append(_guarded(f"fcrdns:{ip}", check_fcrdns, lookups, ip))
    status = max((check.status for check in checks), key=SEVERITY.__getitem__)
    return DomainReport(domain, status, checks, lookups.min_ttl)


def _guarded(name: str, check: Callable[..., CheckResult], *args: Any) -> CheckResult:
    try:
        return check(*args)
    except DNSUnavailable as exc:
        return CheckResult(name, "unknown", f"{exc}; check your resolver and try again")


def check_primary(domain: str, primary: str) -> CheckResult:
    """Cold outreach must not risk the reputation of the company's everyday mail."""
    if not primary.strip():
        reason = "primary domain not configured: set primary_domain so it can never send"
        return CheckResult("primary", "warn", reason)
    try:
        primary = normalize_domain(primary)
    except ValueError as exc:
        return CheckResult("primary", "warn", f"setting primary_domain: {exc}")
    ours, theirs = registrable_domain(domain), registrable_domain(primary)
    detail = {"registrable": ours, "primary_registrable": theirs}
    if ours != theirs:
        reason = f"{ours} is separate from the primary domain {theirs}"
        return CheckResult("primary", "pass", reason, detail)
    if domain == primary:
        what = f"{domain} is the company's primary domain"
    else:
        what = f"{domain} is under the primary domain {theirs} and shares its reputation"
    reason = f"{what}: complaints would hurt everyday company mail; send from a separate domain"
    return CheckResult("primary", "fail", reason, detail)


def check_mx(lookups: Lookups, domain: str) -> CheckResult:
    """Replies and bounces must reach the domain, and receivers check that they can."""
    records = lookups(domain, "MX")
    if not records:
        if domain in lookups.nxdomain:
            reason = f"{domain} does not exist in DNS (NXDOMAIN): register it or fix the name"
        else:
            reason = f"{domain} has no MX record: replies cannot be delivered; add one"
        return CheckResult("mx", "fail", reason)
    hosts = sorted(records, key=lambda record: int(record.split()[0]))
    if any(record.split()[1] == "." for record in hosts):
        reason = f"{domain} publishes a null MX (RFC 7505): it accepts no mail, replies bounce"
        return CheckResult("mx", "fail", reason, {"mx": hosts})
    return CheckResult("mx", "pass", f"MX {', '.join(hosts)}", {"mx": hosts})


def check_spf(lookups: Lookups, domain: str) -> CheckResult:
    verdict = evaluate_spf(domain, lookups)
    return CheckResult("spf", verdict.status, verdict.reason, verdict.detail())


def _tags(text: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags.setdefault(key.strip().lower(), value.strip())
    return tags


def check_dkim(lookups: Lookups, domain: str, selector: str) -> CheckResult:
    """Receivers must find the public key of the selector our mail server signs with."""
    name = f"{selector}._domainkey.{domain}"
    records = [_tags(text) for text in lookups(name, "TXT")]
    keys = [tags for tags in records if tags.get("v") == "DKIM1"]
    detail: dict[str, Any] = {"selector": selector, "name": name}
    if len(keys) != 1:
        if not records:
            problem = f"no DKIM key at {name}: publish the key for selector {selector!r}"
        elif not keys:
            problem = f"the TXT record at {name} lacks v=DKIM1; publish a DKIM key record"
        else:
            problem = f"{len(keys)} DKIM records at {name}: verifiers may pick either; keep one"
        return CheckResult("dkim", "fail", problem, detail)
    tags = keys[0]
    key_text = "".join(tags.get("p", "").split())
    if not key_text:
        return CheckResult("dkim", "fail", f"{name} has an empty p= (key revoked)", detail)
    key_type = tags.get("k", "rsa").lower()
    try:
        der = base64.b64decode(key_text, validate=True)
    except binascii.Error:
        return CheckResult("dkim", "fail", f"p= at {name} is not valid base64", detail)
    if key_type == "ed25519":
        if len(der) == 32:
            return CheckResult("dkim", "pass", "Ed25519 key published", detail)
        return CheckResult("dkim", "fail", f"{name}: Ed25519 key is not 32 bytes", detail)
    if key_type != "rsa":
        return CheckResult("dkim", "fail", f"{name}: unknown key type k={key_type}", detail)
    return _judge_rsa(name, der, detail)


def _judge_rsa(name: str, der: bytes, detail: dict[str, Any]) -> CheckResult:
    try:
        key = load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, rsa.RSAPublicKey):
        reason = f"p= at {name} is not an RSA public key (SubjectPublicKeyInfo DER)"
        return CheckResult("dkim", "fail", reason, detail)
    detail["bits"] = bits = key.key_size
    if bits < 1024:
        reason = f"{bits}-bit RSA key: receivers ignore keys under 1024 bits; publish 2048"
        return CheckResult("dkim", "fail", reason, detail)
    if bits < 2048:
        return CheckResult("dkim", "warn", f"{bits}-bit RSA key: rotate to 2048 bits", detail)
    return CheckResult("dkim", "pass", f"{bits}-bit RSA key at {name}", detail)


def check_dmarc(lookups: Lookups, domain: str) -> CheckResult:
    """Large mailbox providers require DMARC from bulk senders; p=none only monitors."""
    name = f"_dmarc.{domain}"
    records = [text for text in lookups(name, "TXT") if _tags(text).get("v") == "DMARC1"]
    organisation = registrable_domain(domain)
    inherited = not records and organisation != domain
    if inherited:
        name = f"_dmarc.{organisation}"
        records = [text for text in lookups(name, "TXT") if _tags(text).get("v") == "DMARC1"]
    detail: dict[str, Any] = {"name": name, "records": records}
    if not records:
        reason = f"no DMARC record at {name}: publish 'v=DMARC1; p=none; rua=mailto:...' first"
        return CheckResult("dmarc", "fail", reason, detail)
    if len(records) > 1:
        reason = f"{len(records)} DMARC records at {name}: receivers then ignore DMARC; keep one"
        return CheckResult("dmarc", "fail", reason, detail)
    tags = _tags(records[0])
    tag = "sp" if inherited and "sp" in tags else "p"
    policy = tags.get(tag, "").lower()
    detail["policy"] = policy
    where = f" (inherited from {name})" if inherited else ""
    if policy not in DMARC_POLICIES:
        shown = f"{tag}={policy}" if tag in tags else "no p= tag"
        reason = f"{shown} at {name}: the policy must be none, quarantine or reject"
        return CheckResult("dmarc", "fail", reason, detail)
    if policy == "none":
        reason = f"p=none{where} only monitors; move to quarantine once reports are clean"
        return CheckResult("dmarc", "warn", reason, detail)
    return CheckResult("dmarc", "pass", f"{tag}={policy}{where}", detail)


def check_listed(lookups: Lookups, name: str, subject: str, zone: str) -> CheckResult:
    """Is ``subject`` (a domain, or an IP for an IP list) on the DNS blocklist ``zone``?

    NXDOMAIN means not listed. A 127.0.0.0/8 answer is a listing, except the codes
    lists use for "query refused" (``BLOCKLIST_ERRORS``: Spamhaus' 127.255.255.x, 127.0.0.1
    from URIBL and SURBL). Those, and answers outside 127/8 (a resolver that rewrites
    NXDOMAIN), are a warning naming the fix: the list did not answer, so it neither clears
    nor blocks the domain, and the other checks decide. Asked through a public resolver (a
    laptop, a cloud VM) that is the common case, and it must not stop all sending.
    """
    try:
        address = ipaddress.ip_address(subject)
    except ValueError:
        query = f"{subject}.{zone}"
    else:
        reverse = dns.reversename.from_address(str(address)).to_text(omit_final_dot=True)
        query = reverse.rsplit(".", 2)[0] + f".{zone}"
    codes = sorted(lookups(query, "A"), key=ipaddress.ip_address)
    detail = {"query": query, "codes": codes}
    if not codes:
        return CheckResult(name, "pass", f"{subject} is not listed on {zone}", detail)
    listed = [code for code in codes if _is_listing(code)]
    if listed:
        reason = (
            f"{subject} is listed on {zone} (return code {', '.join(listed)}): its mail "
            "will be rejected or junked; request delisting before sending"
        )
        return CheckResult(name, "fail", reason, detail)
    explained = [_refusal(code) for code in codes]
    fixes = dict.fromkeys(fix.format(zone=zone) for _, fix in explained)
    reason = (
        f"{zone} did not answer: it returned {', '.join(codes)} "
        f"({'; '.join(dict.fromkeys(what for what, _ in explained))}), which is not a listing; "
        f"{'; or '.join(fixes)}"
    )
    return CheckResult(name, "warn", reason, {**detail, "refused": True})


def _refusal(code: str) -> tuple[str, str]:
    """What a non-listing answer means, and the fix."""
    if code in BLOCKLIST_ERRORS:
        return BLOCKLIST_ERRORS[code]
    if ipaddress.ip_address(code) in _ERROR_RANGE:
        return "an error code about the query itself (Spamhaus 127.255.255.x)", _OWN_RESOLVER
    return _UNEXPLAINED


def _is_listing(code: str) -> bool:
    """A 127.0.0.0/8 answer other than the documented errors above (RFC 5782 2.1)."""
    address = ipaddress.ip_address(code)
    if address not in ipaddress.ip_network("127.0.0.0/8") or code in BLOCKLIST_ERRORS:
        return False
    return address not in _ERROR_RANGE


def check_fcrdns(lookups: Lookups, ip: str) -> CheckResult:
    """Receivers distrust IPs whose reverse name does not resolve back to them."""
    name = f"fcrdns:{ip}"
    address = ipaddress.ip_address(ip)
    names = lookups(dns.reversename.from_address(ip).to_text(), "PTR")
    if not names:
        reason = f"{ip} has no PTR record: ask whoever runs the IP to set one for your domain"
        return CheckResult(name, "fail", reason)
    rdtype = "A" if address.version == 4 else "AAAA"
    resolved: dict[str, list[str]] = {}
    for host in names:
        resolved[host] = lookups(host, rdtype)
        if any(ipaddress.ip_address(found) == address for found in resolved[host]):
            return CheckResult(name, "pass", f"{ip} -> {host} -> {ip}", {"ptr": resolved})
    found = ", ".join(addr for addrs in resolved.values() for addr in addrs) or "nothing"
    reason = (
        f"{ip} -> {', '.join(names)}, which resolves to {found}, not back to {ip}: "
        "point the PTR name's address record at the IP"
    )
    return CheckResult(name, "fail", reason, {"ptr": resolved})
