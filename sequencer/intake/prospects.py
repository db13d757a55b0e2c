"""Prospects and accounts: create or update them, one at a time or as a batch of rows.

``upsert_rows`` is the one way rows from outside (a CSV import, ``POST /prospects``) are
stored: each row is cleaned (``prospect_values``) and written inside a savepoint, so a bad
row is an error naming it and never half a prospect; rows are committed in batches. A row
updates the prospect with its email address (re-importing a file changes nothing twice),
and an empty value never erases a stored one.

Time zones: one the row gives wins. Without one, a new prospect (or one whose zone was never
given) gets the zone of its country and region (``timezones.infer``), marked ``inferred``;
where none can be told it stays UTC, marked ``none``, and the row gets a warning.

Accounts: by the row's company domain (a domain or website column), else the email's
domain. A free-mail address (``freemail``) names no company, so its person's account is
keyed by the company name the row gives, and has no domain; without a name, no account.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from sequencer.core.models import Account, Prospect
from sequencer.intake import countries, timezones
from sequencer.intake.freemail import is_freemail
from sequencer.intake.prospect_values import Cleaned, clean
from suppression.normalize import domain_of, normalize_domain, normalize_email

MAX_ROWS = 100_000  # in one call; a bigger list is split by the caller (CRMs export in pieces too)


@dataclass(frozen=True)
class ProspectRow:
    """One row from outside: ``where`` names it in messages ("people.csv:12", "prospects[3]");
    ``values`` are keyed by ``prospect_values.FIELDS``; ``custom`` are custom fields."""

    where: str
    values: dict[str, Any]
    custom: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)  # field -> the column it came from, for messages

    def error(self, message: str) -> str:
        """``message`` ("country: unknown ...") for this row, naming the column beside the field."""
        name, sep, rest = message.partition(": ")
        column = self.columns.get(name, name) if sep else name
        return f"{self.where}: {column} ({name}): {rest}" if column != name else f"{self.where}: {message}"


@dataclass
class ImportReport:
    stored: int = 0
    created: int = 0
    errors: list[str] = field(default_factory=list)  # rows refused, each "where: field: why"
    warnings: list[str] = field(default_factory=list)  # rows stored with something to know
    notes: list[str] = field(default_factory=list)  # what the reader guessed (an encoding)


def upsert_rows(
    session: Session,
    now: datetime,
    rows: Iterable[ProspectRow],
    batch: int = 500,
    progress: Callable[[int], None] | None = None,
    report: ImportReport | None = None,
) -> ImportReport:
    """Store every good row of ``rows`` (create or update by email) and commit; the report
    names each refused row and each row stored without a time zone. Stable: the HTTP API calls it."""
    report = report or ImportReport()
    pending = 0
    for count, row in enumerate(rows, 1):
        if count > MAX_ROWS:
            report.errors.append(f"{row.where}: more than {MAX_ROWS} rows; the rest is not read (split the file)")
            break
        try:
            with session.begin_nested():
                prospect, created, warning = _upsert(session, now, row.values, row.custom)
            report.stored += 1
            report.created += created
            pending += 1
            if warning:
                report.warnings.append(f"{row.where}: {prospect.email}: {warning}")
        except ValueError as exc:
            report.errors.append(row.error(str(exc)))
        if progress:
            progress(1)
        if pending >= batch:
            session.commit()
            pending = 0
    session.commit()
    return report


def upsert_prospect(
    session: Session, now: datetime, email: str, values: dict[str, Any], domain: str = ""
) -> Prospect:
    """Create or update one prospect (and its account); does not commit. ``values`` may hold
    custom fields beside the known ones (a signal's payload)."""
    prospect, _created, _warning = _upsert(session, now, {**values, "email": email, "domain": domain or ""})
    return prospect


def _upsert(session: Session, now: datetime, values: dict[str, Any],
            custom: dict[str, Any] | None = None) -> tuple[Prospect, bool, str]:
    """(prospect, created, warning); ``ValueError`` naming the field of a bad value."""
    address = _address(values.get("email"))
    cleaned = clean({key: value for key, value in values.items() if key != "email"}, custom)
    account = _account_for(session, address, cleaned)
    prospect = session.exec(select(Prospect).where(Prospect.email == address)).first()
    created = prospect is None
    if prospect is None:
        prospect = Prospect(email=address, created_at=now, custom={}, timezone_source="none")
    for key, value in cleaned.prospect.items():
        setattr(prospect, key, value)
    if prospect.region and prospect.country:  # a state given on one import, its country on another
        prospect.region = countries.region_code(prospect.country, prospect.region)
    if cleaned.custom:
        prospect.custom = {**(prospect.custom or {}), **cleaned.custom}
    if account is not None:
        prospect.account_id = account.id
    warning = _set_timezone(prospect, cleaned.timezone)
    session.add(prospect)
    session.flush()
    return prospect, created, warning


def _address(raw: Any) -> str:
    """The email address; an export's list of several ("a@x.com; b@y.com") gives its first."""
    text = raw.strip() if isinstance(raw, str) else ""
    if len(text) > 1000:
        raise ValueError(f"email: {len(text)} characters, too long for an address")
    for separator in (";", ","):
        if separator in text and "@" in text.split(separator, 1)[0]:
            text = text.split(separator, 1)[0]
    try:
        return normalize_email(text)
    except ValueError as exc:
        raise ValueError(f"email: {exc}") from None


def _set_timezone(prospect: Prospect, given: str) -> str:
    """Set the zone given, or infer one unless one was given before; the warning, if any."""
    if not given and prospect.timezone_source == "given":
        return ""
    prospect.timezone, prospect.timezone_source, warning = zone_for(given, prospect.country, prospect.region)
    return warning


def zone_for(given: str, country: str, region: str) -> tuple[str, str, str]:
    """(zone, given|inferred|none, warning) for a prospect with these values."""
    if given:
        return given, "given", ""
    inferred = timezones.infer(country, region)
    if inferred:
        return inferred, "inferred", ""
    where = " ".join(part for part in (region, country) if part)
    reason = (f"{where} spans several time zones: add a state or a time zone column" if where
              else "no time zone and no country to infer one from")
    return "UTC", "none", f"{reason}; sending windows will be in UTC"


def account_key(address: str, cleaned: Cleaned) -> tuple[str, str] | None:
    """("domain", d) or ("name", company) for the row's account, or None (see the module docstring)."""
    domain = cleaned.domain
    if domain and is_freemail(domain):  # "website: gmail.com" names no company either
        domain = ""
    if not domain:
        try:
            domain = normalize_domain(domain_of(address))
        except ValueError as exc:
            raise ValueError(f"domain: {exc}") from None
        if is_freemail(domain):
            name = cleaned.account.get("name", "")
            return ("name", name) if name else None
    return "domain", domain


def _account_for(session: Session, address: str, cleaned: Cleaned) -> Account | None:
    key = account_key(address, cleaned)
    if key is None:
        return None
    kind, value = key
    if kind == "name":
        return upsert_account_by_name(session, value, cleaned.account)
    return upsert_account(session, value, cleaned.account)


def preview(values: dict[str, Any], custom: dict[str, Any] | None = None) -> tuple[dict[str, Any], str]:
    """What ``upsert_rows`` would store for this row as a new prospect, and its warning; no
    database. ``ValueError`` as for a refused row."""
    address = _address(values.get("email"))
    cleaned = clean({key: value for key, value in values.items() if key != "email"}, custom)
    key = account_key(address, cleaned)
    zone, source, warning = zone_for(cleaned.timezone, cleaned.prospect.get("country", ""),
                                     cleaned.prospect.get("region", ""))
    account = {"key": f"{key[0]}: {key[1]}" if key else "none", **cleaned.account}
    stored = {"email": address, **cleaned.prospect, "timezone": zone, "timezone_source": source,
              "account": account, "custom": cleaned.custom}
    return stored, warning


def upsert_account(session: Session, domain: str, fields: dict[str, Any]) -> Account:
    account = session.exec(select(Account).where(Account.domain == domain)).first()
    if account is None:
        account = Account(domain=domain, name=fields.get("name", domain), custom={})
    for key, value in fields.items():
        setattr(account, key, value)
    session.add(account)
    session.flush()
    return account


def name_key(name: str) -> str:
    """How a company known only by name is found again: case and spacing do not matter."""
    return " ".join(name.casefold().split())[:255]


def upsert_account_by_name(session: Session, name: str, fields: dict[str, Any]) -> Account:
    """The domain-less account of the company called ``name`` (its people use free-mail)."""
    key = name_key(name)
    account = session.exec(select(Account).where(Account.name_key == key)).first()
    if account is None:
        account = Account(domain=None, name_key=key, name=name, custom={})
    for column, value in fields.items():
        setattr(account, column, value)
    session.add(account)
    session.flush()
    return account


def count_rows(path: Path) -> int:
    """About how many rows ``path`` has (its line breaks, less the header), for a progress bar;
    read as bytes, so any encoding counts without failing."""
    lines = 0
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            lines += chunk.count(b"\n")
    return max(lines - 1, 0)


def as_dict(prospect: Prospect, account: Account | None) -> dict[str, Any]:
    """A prospect as ``prospects show --json`` and ``POST /prospects`` give it back."""
    return {
        "id": prospect.id, "email": prospect.email, "first_name": prospect.first_name,
        "last_name": prospect.last_name, "title": prospect.title, "phone": prospect.phone,
        "linkedin_url": prospect.linkedin_url, "owner": prospect.owner, "country": prospect.country,
        "region": prospect.region, "timezone": prospect.timezone, "timezone_source": prospect.timezone_source,
        "account": None if account is None else {
            "id": account.id, "domain": account.domain, "name": account.name, "industry": account.industry,
            "employees": account.employees,
        },
        "custom": dict(prospect.custom or {}),
        "created_at": prospect.created_at.isoformat() if prospect.created_at else None,
    }


def listing(
    session: Session, account: str = "", owner: str = "", limit: int = 200
) -> list[tuple[Prospect, Account | None]]:
    """Prospects with their accounts, newest first; ``account`` is a domain or a company name."""
    query = select(Prospect, Account).join(Account, Account.id == Prospect.account_id, isouter=True)
    if account:
        wanted = account.strip().lower()
        query = query.where((Account.domain == wanted) | (func.lower(Account.name) == wanted))
    if owner:
        query = query.where(Prospect.owner == owner.strip())
    return list(session.exec(query.order_by(Prospect.id.desc()).limit(limit)).all())
