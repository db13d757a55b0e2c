"""Static SPF evaluation of a sending domain: would receivers get a usable record?

This does not evaluate SPF against a connecting IP (that is the receiver's job); it
finds the mistakes that turn every evaluation into ``permerror`` or into "anyone may
send": several records, more than 10 DNS-lookup terms counted recursively through
``include`` and ``redirect`` (RFC 7208 section 4.6.4), more than 2 void lookups, a
missing include target, and a final ``all`` that is not ``~all`` or ``-all``.

DNS is reached only through the ``lookup`` callable, which returns the records of a
name as text (an empty list for NXDOMAIN or no data) and raises when DNS could not
answer; that exception passes through unchanged so the caller can report "unknown".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

Lookup = Callable[[str, str], list[str]]

LOOKUP_LIMIT = 10
VOID_LIMIT = 2
LOOKUP_TERMS = {"include", "a", "mx", "ptr", "exists"}

_MECHANISM = re.compile(
    r"^([+?~-]?)(all|include|a|mx|ptr|ip4|ip6|exists)(?:([:/])(.*))?$", re.IGNORECASE
)
_MODIFIER = re.compile(r"^([a-z][a-z0-9_.-]*)=(.*)$", re.IGNORECASE)


class SpfError(ValueError):
    """The record set would make receivers return ``permerror``."""


@dataclass
class SpfVerdict:
    """The outcome: ``status`` is pass, warn or fail; ``reason`` says what to change."""

    status: str
    reason: str
    record: str = ""
    lookups: int = 0
    void_lookups: int = 0
    all_qualifier: str = ""
    unexpanded: list[str] = field(default_factory=list)

    def detail(self) -> dict[str, object]:
        return {
            "record": self.record,
            "lookups": self.lookups,
            "void_lookups": self.void_lookups,
            "all": self.all_qualifier,
            "unexpanded_macros": self.unexpanded,
        }


def is_spf(text: str) -> bool:
    """True for an SPF record: exactly ``v=spf1`` followed by a space or nothing."""
    lowered = text.strip().lower()
    return lowered == "v=spf1" or lowered.startswith("v=spf1 ")


def spf_records(domain: str, lookup: Lookup) -> list[str]:
    return [text.strip() for text in lookup(domain, "TXT") if is_spf(text)]


def evaluate_spf(domain: str, lookup: Lookup) -> SpfVerdict:
    """Check the SPF record of ``domain``; DNS failures raise out of ``lookup``."""
    records = spf_records(domain, lookup)
    if not records:
        return SpfVerdict(
            "fail",
            f"no SPF record (TXT 'v=spf1 ...') at {domain}: receivers cannot tell which "
            "servers may send for it; publish one that ends in ~all or -all",
        )
    if len(records) > 1:
        return SpfVerdict(
            "fail",
            f"{len(records)} SPF records at {domain}: receivers return permerror when there "
            "is more than one; merge them into a single record",
            record=" | ".join(records),
        )
    walk = _Walk(lookup)
    verdict = SpfVerdict("pass", "", record=records[0])
    try:
        qualifier = walk.record(domain, records[0], chain=(domain,))
    except SpfError as exc:
        verdict.status, verdict.reason = "fail", f"{exc}: receivers return permerror"
        qualifier = None
    verdict.lookups, verdict.void_lookups = walk.lookups, walk.voids
    verdict.unexpanded = walk.unexpanded
    verdict.all_qualifier = qualifier or ""
    if verdict.status == "fail":
        return verdict
    if walk.lookups > LOOKUP_LIMIT:
        verdict.status = "fail"
        verdict.reason = (
            f"{walk.lookups}{'+' if walk.stopped else ''} DNS-lookup terms counted through "
            f"includes (limit "
            f"{LOOKUP_LIMIT}): receivers return permerror; remove or flatten includes"
        )
    elif walk.voids > VOID_LIMIT:
        verdict.status = "fail"
        verdict.reason = (
            f"{walk.voids} void lookups (names with no records; limit {VOID_LIMIT}): "
            "receivers return permerror; remove the mechanisms that point at nothing"
        )
    else:
        verdict.status, verdict.reason = _judge_all(qualifier, walk.lookups)
    return verdict


def _judge_all(qualifier: str | None, lookups: int) -> tuple[str, str]:
    counted = f"{lookups}/{LOOKUP_LIMIT} DNS lookups"
    if qualifier in ("~", "-"):
        return "pass", f"one SPF record ending in {qualifier}all, {counted}"
    if qualifier == "+":
        reason = (
            "SPF ends in +all, which authorises every server on the internet to send as "
            "this domain; end it with ~all or -all"
        )
        return "fail", reason
    if qualifier == "?":
        return (
            "warn",
            "SPF ends in ?all (neutral): unlisted servers are not rejected; end it with ~all or -all",
        )
    return "warn", "SPF has no final all: unlisted senders get neutral; end it with ~all or -all"


class _Walk:
    """Counts lookup terms and void lookups the way a receiver would, through includes."""

    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup
        self.lookups = 0
        self.voids = 0
        self.stopped = False  # receivers give up past the limit, and so do we
        self.unexpanded: list[str] = []

    def record(self, domain: str, text: str, chain: tuple[str, ...]) -> str | None:
        """Walk one record; return the qualifier of its effective ``all`` (after redirect)."""
        all_qualifier: str | None = None
        redirect: str | None = None
        for term in text.split()[1:]:
            mechanism = _MECHANISM.match(term)
            if mechanism:
                qualifier, name, separator, argument = mechanism.groups()
                name = name.lower()
                target = argument.split("/")[0] if separator == ":" else ""
                if name in ("include", "exists") and not target:
                    raise SpfError(f"{term!r} without a domain in the SPF record of {domain}")
                if name == "all":
                    all_qualifier = qualifier or "+"
                elif name in LOOKUP_TERMS:
                    self.lookups += 1
                    self._mechanism(name, target or domain, domain, chain)
                continue
            modifier = _MODIFIER.match(term)
            if not modifier:
                raise SpfError(f"unknown term {term!r} in the SPF record of {domain}")
            if modifier.group(1).lower() == "redirect":
                redirect = modifier.group(2)
        if redirect and all_qualifier is None:
            self.lookups += 1
            return self._follow(redirect, "redirect=", chain)
        return all_qualifier

    def _mechanism(self, name: str, target: str, domain: str, chain: tuple[str, ...]) -> None:
        if "%" in target:
            self.unexpanded.append(f"{name}:{target}")
            return
        if name == "include":
            self._follow(target, "include:", chain)
        elif name == "a":
            self._count_void(self.lookup(target, "A") or self.lookup(target, "AAAA"))
        elif name == "mx":
            self._count_void(self.lookup(target, "MX"))
        elif name == "exists":
            self._count_void(self.lookup(target, "A"))

    def _follow(self, target: str, how: str, chain: tuple[str, ...]) -> str | None:
        target = target.rstrip(".").lower()
        if "%" in target:
            self.unexpanded.append(how + target)
            return None
        if target in chain:
            raise SpfError(f"SPF {how}{target} loops back to itself")
        if self.lookups > LOOKUP_LIMIT:
            self.stopped = True
            return None
        answers = self.lookup(target, "TXT")
        self._count_void(answers)
        records = [text.strip() for text in answers if is_spf(text)]
        if len(records) != 1:
            found = "no SPF record" if not records else f"{len(records)} SPF records"
            raise SpfError(f"{how}{target} has {found}")
        return self.record(target, records[0], (*chain, target))

    def _count_void(self, answers: list[str]) -> None:
        if not answers:
            self.voids += 1
