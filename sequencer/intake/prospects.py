"""Prospects and accounts: create, update and import from CSV with per-row errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from sequencer.core.models import Account, Prospect
from sequencer.intake.freemail import is_freemail
from sequencer.sequences import schedule
from suppression.csv_input import BadLine, CsvError, CsvInput
from suppression.normalize import domain_of, normalize_domain, normalize_email

PROSPECT_FIELDS = (
    "first_name", "last_name", "title", "timezone", "country", "phone", "linkedin_url", "owner",
)
ACCOUNT_FIELDS = {"company": "name", "industry": "industry", "employees": "employees"}


@dataclass
class ImportReport:
    stored: int = 0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the reader guessed (an encoding)


def clean_prospect_fields(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split raw fields into (prospect fields, account fields); raise ``ValueError`` naming a bad one."""
    prospect: dict[str, Any] = {"custom": {}}
    account: dict[str, Any] = {}
    for key, raw in values.items():
        value = raw.strip() if isinstance(raw, str) else raw
        if key in ("email", "domain") or value in (None, ""):
            continue
        if key in PROSPECT_FIELDS:
            prospect[key] = str(value)
        elif key in ACCOUNT_FIELDS:
            account[ACCOUNT_FIELDS[key]] = value
        else:
            prospect["custom"][key] = value
    if "timezone" in prospect:
        try:
            schedule.zone(prospect["timezone"])
        except ValueError as exc:
            raise ValueError(f"timezone: {exc}") from None
    if "country" in prospect:
        prospect["country"] = prospect["country"].upper()
        if not schedule.known_country(prospect["country"]):
            raise ValueError(f"country: unknown country code {prospect['country']!r}")
    if "employees" in account:
        try:
            account["employees"] = int(account["employees"])
        except (TypeError, ValueError):
            raise ValueError(f"employees: not a whole number: {account['employees']!r}") from None
    return prospect, account


def upsert_prospect(
    session: Session, now: datetime, email: str, values: dict[str, Any], domain: str = ""
) -> Prospect:
    """Create or update a prospect (and its account, by domain); does not commit."""
    try:
        address = normalize_email(email)
    except ValueError as exc:
        raise ValueError(f"email: {exc}") from None
    try:
        account_domain = normalize_domain(domain) if domain else domain_of(address)
    except ValueError as exc:
        raise ValueError(f"domain: {exc}") from None
    prospect_fields, account_fields = clean_prospect_fields(values)
    # A free-mail address names no company: no shared account unless a domain is given.
    account = None if is_freemail(account_domain) else upsert_account(session, account_domain, account_fields)
    prospect = session.exec(select(Prospect).where(Prospect.email == address)).first()
    if prospect is None:
        prospect = Prospect(email=address, created_at=now, custom={})
    custom = {**(prospect.custom or {}), **prospect_fields.pop("custom")}
    for key, value in prospect_fields.items():
        setattr(prospect, key, value)
    prospect.custom = custom
    prospect.account_id = account.id if account else None
    session.add(prospect)
    session.flush()
    return prospect


def upsert_account(session: Session, domain: str, fields: dict[str, Any]) -> Account:
    account = session.exec(select(Account).where(Account.domain == domain)).first()
    if account is None:
        account = Account(domain=domain, name=fields.get("name", domain), custom={})
    for key, value in fields.items():
        setattr(account, key, value)
    session.add(account)
    session.flush()
    return account


def import_csv(
    session: Session,
    now: datetime,
    path: Path,
    progress: Callable[[int], None] | None = None,
    batch: int = 500,
) -> ImportReport:
    """Import prospects from CSV; bad rows are reported by line, good rows are stored.

    The file is read by ``suppression.csv_input`` (UTF-8, UTF-16 with a BOM, or
    Windows-1252 with a note; ``,``, ``;`` or tab; each row named by the line it starts
    on), so an odd file is a list of refused rows or one clear refusal, never a traceback.
    Each row is written inside a savepoint and rows are committed in batches, so a crash
    loses at most the uncommitted batch and never leaves half a row.
    """
    report = ImportReport()
    with path.open("rb") as handle:
        try:
            reader = CsvInput(handle, str(path))
        except CsvError as exc:
            report.errors.append(str(exc))
            return report
        report.notes.extend(reader.notes)
        rows = iter(reader)
        header = next(rows, None)
        if isinstance(header, BadLine):
            report.errors.append(f"{path}:{header.line}: cannot read the header: {header.problem}")
            return report
        columns = [column.strip() for column in header.fields] if header else []
        if "email" not in columns:
            report.errors.append(f"{path}:1: header must include an 'email' column")
            return report
        for row in rows:
            if isinstance(row, BadLine):
                report.errors.append(f"{path}:{row.line}: {row.problem}")
            elif len(row.fields) > len(columns):
                report.errors.append(f"{path}:{row.line}: more fields than the header has")
            else:
                values = dict(zip(columns, row.fields, strict=False))
                try:
                    with session.begin_nested():
                        upsert_prospect(session, now, values.get("email") or "", values, values.get("domain") or "")
                    report.stored += 1
                except ValueError as exc:
                    report.errors.append(f"{path}:{row.line}: {exc}")
            if progress:
                progress(1)
            if report.stored and report.stored % batch == 0:
                session.commit()
    session.commit()
    return report


def count_rows(path: Path) -> int:
    """About how many rows ``path`` has (its line breaks, less the header), for a progress bar;
    read as bytes, so any encoding counts without failing."""
    lines = 0
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            lines += chunk.count(b"\n")
    return max(lines - 1, 0)
