"""Prospects and accounts: create or update them, one at a time or as a batch of rows.

``upsert_rows`` is the one way rows from outside (a CSV import, ``POST /prospects``) are
stored: each row is cleaned (``prospect_values``) before anything is written, so a bad row is
an error naming it and never half a prospect; rows are read, written and committed in batches
(one lookup per batch, not per row: see ``upsert_rows``). A row
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
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, select

from sequencer.core.models import Account, Prospect
from sequencer.intake import countries, timezones
from sequencer.intake.freemail import is_freemail
from sequencer.intake.prospect_values import Cleaned, clean
from suppression.normalize import domain_of, normalize_domain, normalize_email

MAX_ROWS = 100_000  # in one call; a bigger list is split by the caller (CRMs export in pieces too)
IN_CHUNK = 500  # values in one IN (...): well under SQLite's and PostgreSQL's bound-parameter limits


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
    names each refused row and each row stored without a time zone. Stable: the HTTP API calls it.

    Rows go in batches of ``batch``: every row is cleaned first (a bad value refuses its row
    before anything is written), then the batch's known prospects and accounts are read in one
    query each and the batch is flushed and committed once (``_store_batch``). A batch the
    database refuses as a whole (a value too long for a column, a concurrent writer's row) is
    rolled back to its savepoint and stored again one row at a time, each in its own savepoint,
    so only the offending row is refused.
    """
    report = report or ImportReport()
    chunk: list[tuple[ProspectRow, _Ready]] = []
    for count, row in enumerate(rows, 1):
        if count > MAX_ROWS:
            report.errors.append(f"{row.where}: more than {MAX_ROWS} rows; the rest is not read (split the file)")
            break
        try:
            chunk.append((row, _ready(row.values, row.custom)))
        except ValueError as exc:
            report.errors.append(row.error(str(exc)))
        if progress:
            progress(1)
        if len(chunk) >= batch:
            _store_chunk(session, now, chunk, report)
            chunk = []
    if chunk:
        _store_chunk(session, now, chunk, report)
    session.commit()
    return report


@dataclass(frozen=True)
class _Ready:
    """A row cleaned and keyed, nothing stored yet."""

    address: str
    cleaned: Cleaned
    account_key: tuple[str, str] | None


def _ready(values: dict[str, Any], custom: dict[str, Any] | None = None) -> _Ready:
    """Clean a row; ``ValueError`` naming the field of a bad value. No database."""
    address = _address(values.get("email"))
    cleaned = clean({key: value for key, value in values.items() if key != "email"}, custom)
    return _Ready(address, cleaned, account_key(address, cleaned))


def _store_chunk(session: Session, now: datetime, chunk: list[tuple[ProspectRow, _Ready]],
                 report: ImportReport) -> None:
    """One batch: stored together, or (refused by the database) row by row; then committed."""
    outcome = ImportReport()
    try:
        with session.begin_nested():
            _store_batch(session, now, chunk, outcome)
    except DBAPIError:
        outcome = ImportReport()
        store_one_by_one(session, now, [row for row, _ in chunk], outcome)
    report.stored += outcome.stored
    report.created += outcome.created
    report.errors.extend(outcome.errors)
    report.warnings.extend(outcome.warnings)
    session.commit()


def create_for_signals(session: Session, now: datetime,
                       wanted: dict[str, dict[str, Any]]) -> tuple[dict[str, Prospect], list[Account]]:
    """The prospects (and their accounts) of a batch of signals about people not yet known.

    ``wanted`` is each new address with the payload of its first signal, as ``upsert_prospect``
    takes them; an address whose payload cannot be cleaned is left out (its signal meets the
    ``ValueError`` on its own). Read and written as ``upsert_rows`` does a batch: one ``IN (...)``
    per kind and one flush per kind (a multi-row INSERT each), instead of a lookup, a flush
    and an account upsert per person. Does not commit; a concurrent writer's person is the
    unique index's ``IntegrityError``, a lost race for the caller to retry.
    """
    chunk: list[tuple[ProspectRow, _Ready]] = []
    for email, payload in wanted.items():
        values = {**payload, "email": email, "domain": ""}
        try:
            chunk.append((ProspectRow("signal", values), _ready(values)))
        except ValueError:
            continue
    if not chunk:
        return {}, []
    return _store_batch(session, now, chunk, ImportReport())


def _store_batch(session: Session, now: datetime, chunk: list[tuple[ProspectRow, _Ready]],
                 report: ImportReport) -> tuple[dict[str, Prospect], list[Account]]:
    """Accounts, then prospects, each read with one ``IN (...)`` and written with one flush;
    the batch's prospects by address, and their accounts.

    Rows apply in order as ``_upsert`` would apply them one after the other: a company or a
    person twice in the batch is the same object, updated by each of its rows in turn."""
    domains = {ready.account_key[1] for _, ready in chunk if ready.account_key and ready.account_key[0] == "domain"}
    names = {name_key(ready.account_key[1]) for _, ready in chunk
             if ready.account_key and ready.account_key[0] == "name"}
    by_domain = {a.domain: a for a in _in(session, Account, Account.domain, domains)}
    by_name = {a.name_key: a for a in _in(session, Account, Account.name_key, names)}
    accounts: list[Account | None] = []
    for _, ready in chunk:
        if ready.account_key is None:
            accounts.append(None)
            continue
        kind, value = ready.account_key
        if kind == "name":
            key = name_key(value)
            account = by_name.get(key) or Account(domain=None, name_key=key, name=value, custom={})
            by_name[key] = account
        else:
            account = by_domain.get(value) or Account(domain=value, name=ready.cleaned.account.get("name", value),
                                                      custom={})
            by_domain[value] = account
        for column, field_value in ready.cleaned.account.items():
            setattr(account, column, field_value)
        session.add(account)
        accounts.append(account)
    session.flush()  # the new accounts' ids
    known = {p.email: p for p in _in(session, Prospect, Prospect.email, {ready.address for _, ready in chunk})}
    created: set[str] = set()
    for (row, ready), account in zip(chunk, accounts, strict=True):
        prospect = known.get(ready.address)
        if prospect is None:
            prospect = known[ready.address] = Prospect(email=ready.address, created_at=now, custom={},
                                                       timezone_source="none")
            created.add(ready.address)
        warning = _apply(prospect, ready.cleaned, account)
        session.add(prospect)
        report.stored += 1
        if warning:
            report.warnings.append(f"{row.where}: {prospect.email}: {warning}")
    report.created += len(created)
    session.flush()
    return known, [account for account in accounts if account is not None]


def _in(session: Session, model: type, column: Any, values: set[str]) -> list[Any]:
    """The rows of ``model`` whose ``column`` is one of ``values``, in pieces a database takes."""
    found: list[Any] = []
    ordered = sorted(values)
    for start in range(0, len(ordered), IN_CHUNK):
        found.extend(session.exec(select(model).where(column.in_(ordered[start:start + IN_CHUNK]))))
    return found


def store_one_by_one(session: Session, now: datetime, rows: Iterable[ProspectRow], report: ImportReport) -> None:
    """Each row in its own savepoint, with its own lookups and flush (the path before batches;
    now the fallback for a batch the database refused): a row the database refuses is an error
    naming it, and the others are stored. Does not commit."""
    for row in rows:
        try:
            with session.begin_nested():
                prospect, created, warning = _upsert(session, now, row.values, row.custom)
        except ValueError as exc:
            report.errors.append(row.error(str(exc)))
            continue
        except DBAPIError as exc:  # the database's own words, first line: a column, a constraint
            report.errors.append(f"{row.where}: the database refused the row: {str(exc.orig).splitlines()[0]}")
            continue
        report.stored += 1
        report.created += created
        if warning:
            report.warnings.append(f"{row.where}: {prospect.email}: {warning}")


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
    ready = _ready(values, custom)
    account = _account_for(session, ready)
    prospect = session.exec(select(Prospect).where(Prospect.email == ready.address)).first()
    created = prospect is None
    if prospect is None:
        prospect = Prospect(email=ready.address, created_at=now, custom={}, timezone_source="none")
    warning = _apply(prospect, ready.cleaned, account)
    session.add(prospect)
    session.flush()
    return prospect, created, warning


def _apply(prospect: Prospect, cleaned: Cleaned, account: Account | None) -> str:
    """Set a row's values on ``prospect`` (an empty value erases nothing); the zone's warning."""
    for key, value in cleaned.prospect.items():
        setattr(prospect, key, value)
    if prospect.region and prospect.country:  # a state given on one import, its country on another
        prospect.region = countries.region_code(prospect.country, prospect.region)
    if cleaned.custom:
        prospect.custom = {**(prospect.custom or {}), **cleaned.custom}
    if account is not None:
        prospect.account_id = account.id
    return _set_timezone(prospect, cleaned.timezone)


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


def _account_for(session: Session, ready: _Ready) -> Account | None:
    if ready.account_key is None:
        return None
    kind, value = ready.account_key
    if kind == "name":
        return upsert_account_by_name(session, value, ready.cleaned.account)
    return upsert_account(session, value, ready.cleaned.account)


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
