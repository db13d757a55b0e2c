"""The suppression list: add, remove, find, list, and record an unsubscribe.

``find_suppression`` sits on the hot send path and is called before every touch, so it
is one indexed query: a handful of ``(kind = ? AND value = ?)`` equality terms joined by
OR, each answered from the unique ``(kind, value)`` index. (A row-value ``IN`` would be
shorter to write, but SQLite plans it as a table scan.)

Entries whose reason is in ``PROTECTED_REASONS`` record what a person asked for or did
(an unsubscribe, a spam complaint). Imports and ``add`` never weaken them - no expiry,
no other reason - only an explicit ``remove`` does. That keeps a customer-list import
from quietly re-opening someone who opted out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import delete, or_
from sqlmodel import Session, select
from sqlmodel.sql.expression import Select

from suppression.models import SuppressionEntry
from suppression.normalize import (
    domain_of,
    is_public_suffix,
    normalize_domain,
    normalize_email,
    parent_domains,
)

KINDS = ("email", "domain", "account")
REASONS = (
    "unsubscribed",
    "hard_bounce",
    "complaint",
    "manual",
    "customer",
    "competitor",
    "do_not_contact",
)
PROTECTED_REASONS = frozenset({"unsubscribed", "complaint"})
_IN_LIST_SIZE = 500  # lookup values per query (sequencer.core.db.chunks' size)

Kind = Literal["email", "domain", "account"]
Change = Literal["added", "updated", "kept"]


@dataclass(frozen=True)
class EntrySpec:
    """A validated, normalised entry not yet written: what import and ``add`` both build."""

    kind: str
    value: str
    reason: str
    note: str = ""
    expires_at: datetime | None = None


def infer_kind(value: str) -> str:
    """The kind a bare value most likely means: anything with an ``@`` is an address."""
    return "email" if "@" in value else "domain"


def normalize_value(kind: str, raw: str) -> str:
    """Normalise ``raw`` for ``kind``; ``ValueError`` names the kind and the value."""
    if kind == "email":
        return normalize_email(raw)
    if kind == "domain":
        domain = normalize_domain(raw)
        if is_public_suffix(domain):
            raise ValueError(f"invalid domain {raw!r}: a public suffix, not one organisation")
        return domain
    if kind == "account":
        text = raw.strip() if isinstance(raw, str) else str(raw)
        if not text.isdigit() or int(text) <= 0:
            raise ValueError(f"invalid account {raw!r}: expected a positive account id")
        return str(int(text))
    raise ValueError(f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}")


def make_spec(
    raw: str,
    *,
    kind: str | None = None,
    reason: str = "manual",
    note: str = "",
    expires_at: datetime | None = None,
) -> EntrySpec:
    """Validate one entry; every refusal is a ``ValueError`` a user can act on."""
    kind = (kind or "").strip().lower() or infer_kind(raw)
    reason = reason.strip().lower()
    if reason not in REASONS:
        raise ValueError(f"unknown reason {reason!r}: expected one of {', '.join(REASONS)}")
    if expires_at is not None and expires_at.tzinfo is None:
        raise ValueError(f"expiry {expires_at.isoformat()} has no time zone")
    return EntrySpec(kind, normalize_value(kind, raw), reason, note, expires_at)


def merge(existing: SuppressionEntry, spec: EntrySpec) -> Change:
    """Apply ``spec`` to an existing row, unless that would weaken a protected entry."""
    if existing.reason in PROTECTED_REASONS and (
        spec.reason != existing.reason or spec.expires_at is not None
    ):
        return "kept"
    changed = (existing.reason, existing.note, existing.expires_at) != (
        spec.reason,
        spec.note,
        spec.expires_at,
    )
    existing.reason, existing.note, existing.expires_at = spec.reason, spec.note, spec.expires_at
    return "updated" if changed else "kept"


def add_entry(
    session: Session, now: datetime, spec: EntrySpec, added_by: str = ""
) -> tuple[SuppressionEntry, Change]:
    """Insert or update one entry and commit; says whether it was added, updated or kept."""
    entry, change = stage_entry(session, now, spec, added_by)
    session.commit()
    return entry, change


def stage_entry(
    session: Session, now: datetime, spec: EntrySpec, added_by: str = ""
) -> tuple[SuppressionEntry, Change]:
    """``add_entry`` without the commit, for callers that write more in the same transaction."""
    existing = get_entry(session, spec.kind, spec.value)
    if existing is not None:
        change = merge(existing, spec)
        session.add(existing)
        return existing, change
    entry = new_entry(spec, now, added_by)
    session.add(entry)
    session.flush()
    return entry, "added"


def new_entry(spec: EntrySpec, now: datetime, added_by: str) -> SuppressionEntry:
    """A row for ``spec``, not yet added to any session."""
    return SuppressionEntry(
        kind=spec.kind,
        value=spec.value,
        reason=spec.reason,
        note=spec.note,
        added_by=added_by,
        added_at=now,
        expires_at=spec.expires_at,
    )


def get_entry(session: Session, kind: str, value: str) -> SuppressionEntry | None:
    """The entry for an already-normalised ``(kind, value)``, expired or not."""
    query = select(SuppressionEntry).where(
        SuppressionEntry.kind == kind, SuppressionEntry.value == value
    )
    return session.exec(query).first()


def remove_entry(session: Session, kind: str, value: str) -> bool:
    """Delete one entry by normalised ``(kind, value)``; False when there was none."""
    result = session.execute(
        delete(SuppressionEntry).where(
            SuppressionEntry.kind == kind, SuppressionEntry.value == value
        )
    )
    session.commit()
    return bool(result.rowcount)


@lru_cache(maxsize=65536)  # asked at enrollment and again before each touch
def lookup_keys(email: str | None, account_id: int | None = None) -> tuple[tuple[str, str], ...]:
    """Every ``(kind, value)`` that would suppress this address, most specific first."""
    keys: list[tuple[str, str]] = []
    if email:
        address = normalize_email(email)
        keys.append(("email", address))
        keys.extend(("domain", domain) for domain in parent_domains(domain_of(address)))
    if account_id is not None:
        keys.append(("account", str(account_id)))
    return tuple(keys)


def find_suppression(
    session: Session, now: datetime, email: str | None, account_id: int | None = None
) -> SuppressionEntry | None:
    """The entry that forbids contacting ``email`` (or ``account_id``) at ``now``, if any.

    Matches the exact address, its domain and every parent domain up to the
    registrable domain (``a.b.example.co.uk`` -> ``b.example.co.uk`` ->
    ``example.co.uk``), and the account. Expired entries are ignored. When several
    match, the most specific wins (address, then the closest domain, then account), so
    the explanation names the entry a person would expect. Raises ``ValueError`` for a
    garbage address.
    """
    lookup_keys(email, account_id)  # a garbage address raises here, not in the batch
    return find_suppressions(session, now, [(email, account_id)]).get((email, account_id))


Subject = tuple[str | None, int | None]  # (email, account id), as ``find_suppression`` takes them


def find_suppressions(session: Session, now: datetime,
                      subjects: Iterable[Subject]) -> dict[Subject, SuppressionEntry | None]:
    """``find_suppression`` for many subjects with one query per 500 lookup values.

    Subjects with a garbage address are left out of the answer (``find_suppression``
    on one of them raises, with the reason).
    """
    keys_of: dict[Subject, tuple[tuple[str, str], ...]] = {}
    for subject in subjects:
        try:
            keys_of[subject] = lookup_keys(*subject)
        except ValueError:
            continue
    values = sorted({value for keys in keys_of.values() for _, value in keys})
    found: dict[tuple[str, str], SuppressionEntry] = {}
    # Slices of 500 keep the IN list under every driver's parameter limit. The loop is
    # written here, not taken from sequencer.core.db: suppression imports nothing from sequencer.
    for start in range(0, len(values), _IN_LIST_SIZE):
        for row in session.exec(lookup_query(now, values[start:start + _IN_LIST_SIZE])):
            found[(row.kind, row.value)] = row
    return {subject: next((found[key] for key in keys if key in found), None)
            for subject, keys in keys_of.items()}


def lookup_query(now: datetime, values: Iterable[str]) -> Select:
    """The hot-path query, exposed so a test can assert its plan uses only the index.

    It asks by value alone (``value IN (...)``, one cached statement whatever the
    number of values) and the caller keeps the rows whose kind matches too: building a
    fresh OR of (kind, value) pairs for every send cost more than the lookup itself.
    """
    return select(SuppressionEntry).where(
        SuppressionEntry.value.in_(sorted(set(values))),
        or_(SuppressionEntry.expires_at.is_(None), SuppressionEntry.expires_at > now),
    )


def iter_entries(session: Session, batch: int = 1000) -> Iterator[SuppressionEntry]:
    """Every entry in a stable order, streamed so exporting a million rows stays small."""
    query = (
        select(SuppressionEntry).order_by(SuppressionEntry.id).execution_options(yield_per=batch)
    )
    yield from session.exec(query)


def unsubscribe(session: Session, now: datetime, email: str, source: str) -> SuppressionEntry:
    """Record that ``email`` opted out, permanently, and commit; safe to call twice.

    Whatever entry the address already has becomes a permanent ``unsubscribed`` one: an
    opt-out does not lapse, and it must not hide behind an earlier entry of another reason
    (a hard bounce, say, that a person may later find forged and remove, re-opening the
    address). The earlier entry's reason and note are kept in the note. Only a repeated
    opt-out (already ``unsubscribed``, permanent) leaves the entry exactly as it is, so a
    second one-click POST changes nothing. ``source`` says where the request came from
    (``one-click``, ``reply``, ...) and is stored in ``added_by``.
    """
    address = normalize_email(email)
    existing = get_entry(session, "email", address)
    if existing is not None and existing.reason == "unsubscribed" and existing.expires_at is None:
        return existing
    if existing is not None:
        earlier = f"{existing.reason} entry added by {existing.added_by or 'unknown'}"
        if existing.added_at is not None:
            earlier += f" at {existing.added_at.isoformat()}"
        if existing.expires_at is not None:
            earlier += f", expiring {existing.expires_at.isoformat()}"
        existing.note = f"unsubscribed over an earlier {earlier}" + (f"; its note: {existing.note}"
                                                                       if existing.note else "")
        existing.reason, existing.expires_at = "unsubscribed", None
        existing.added_by, existing.added_at = source, now
        session.add(existing)
        session.commit()
        return existing
    values = {
        "kind": "email",
        "value": address,
        "reason": "unsubscribed",
        "added_by": source,
        "added_at": now,
    }
    # ON CONFLICT DO NOTHING: when two clicks race, the first insert stands and the
    # second reads it back instead of failing.
    session.execute(
        insert_for(session)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["kind", "value"])
    )
    session.commit()
    entry = get_entry(session, "email", address)
    assert entry is not None  # just inserted, or inserted by the racing request
    return entry


def insert_for(session: Session) -> Any:
    """An INSERT on the suppression table that understands ``ON CONFLICT``.

    SQLite and PostgreSQL both support it, with the same API in SQLAlchemy; any other
    database is refused loudly rather than emulated racily.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        raise RuntimeError(f"suppression needs SQLite or PostgreSQL, not {dialect}")
    return insert(SuppressionEntry)
