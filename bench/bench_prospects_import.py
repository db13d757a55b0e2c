"""Benchmark ``prospects import``: rows stored per second from a HubSpot-shaped export; prints figures only.

A CSV of ``--rows`` contacts with HubSpot's headers ("First Name", "Company Name", "Time Zone",
"Country/Region", "Number of Employees" as "1,200", ...) is written once; ``--companies``
company domains are shared among them, so accounts are found again as in a real export. Then,
on a SQLite file (WAL) and on a fresh PostgreSQL database:

* parse - plain ``csv.DictReader`` over the same file: the floor no import can beat, measured
  in the same run so the ratios mean something on a shared, noisy machine;
* import - ``prospect_import.import_file`` with the hubspot preset into an empty database
  (every row a new prospect), as ``sequencer prospects import`` calls it;
* re-import - the same file again (every row an update: found by email, nothing new);
* one by one - ``prospects.store_one_by_one`` (a lookup, a savepoint and a flush per row:
  the path every import took before batches, and still the fallback for a batch the
  database refuses) over ``--one-by-one`` rows into an empty database.

    .venv/bin/python bench/bench_prospects_import.py                # 20,000 rows
    .venv/bin/python bench/bench_prospects_import.py --rows 5000    # quicker
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import itertools
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench_send import fresh_postgres  # one throw-away database for every bench

from sequencer.core import db
from sequencer.intake import prospect_import, prospects

HEADERS = ["Record ID", "First Name", "Last Name", "Email", "Phone Number", "Contact owner", "Lifecycle Stage",
           "Job Title", "Company Name", "Website URL", "Number of Employees", "Industry", "City", "State/Region",
           "Country/Region", "Time Zone", "LinkedIn URL", "Create Date"]
PLACES = [("United States", "Texas", ""), ("Germany", "", "(GMT+01:00) Europe/Berlin"),
          ("USA", "New York", "(GMT-05:00) America/New_York"), ("France", "", ""), ("United Kingdom", "", "")]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=20_000, help="contacts in the export")
    parser.add_argument("--companies", type=int, default=2_000, help="distinct company domains among them")
    parser.add_argument("--one-by-one", type=int, default=2_000, help="rows stored by the row-by-row path")
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="the PostgreSQL server's admin URL (fresh databases are made and dropped)")
    return parser.parse_args(argv)


def write_export(path: Path, rows: int, companies: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADERS)
        for n in range(rows):
            company = n % companies
            country, region, zone = PLACES[n % len(PLACES)]
            writer.writerow([51_000_000 + n, f"First{n}", f"Last{n}", f"Person.{n}@Company{company}.example",
                             f"+1 512 555 {n % 10_000:04d}", "sam.sdr@acme.example", "Lead", "VP Sales",
                             f"Company {company} Inc", f"https://www.company{company}.example/",
                             f"{1_000 + company:,}", "Computer Software", "Austin", region, country, zone,
                             f"https://www.linkedin.com/in/person-{n}", "2026-11-02 09:14"])


def parse_rate(path: Path) -> float:
    started = time.perf_counter()
    with path.open(newline="", encoding="utf-8") as handle:
        count = sum(1 for _ in csv.DictReader(handle))
    return count / (time.perf_counter() - started)


def import_rates(url: str, path: Path, rows: int) -> tuple[float, float]:
    """(rows/s into an empty database, rows/s re-importing the same file) at ``url``."""
    engine = db.make_engine(url)
    db.migrate(engine)
    mapping = prospect_import.column_map_for("hubspot")
    rates = []
    try:
        for expected_new in (rows, 0):
            with db.session(engine) as session:
                started = time.perf_counter()
                report = prospect_import.import_file(session, datetime.now(UTC), path, mapping).report
                rates.append(rows / (time.perf_counter() - started))
            if report.errors or report.stored != rows or report.created != expected_new:
                sys.exit(f"import went wrong: {report.stored} stored, {report.created} new, {report.errors[:3]}")
    finally:
        engine.dispose()
    return rates[0], rates[1]


def one_by_one_rate(url: str, path: Path, rows: int) -> float:
    engine = db.make_engine(url)
    db.migrate(engine)
    mapping = prospect_import.column_map_for("hubspot")
    result = prospect_import.FileImport(None, prospects.ImportReport())
    wanted = list(itertools.islice(prospect_import._rows(path, mapping, (), result), rows))  # the import's reader
    try:
        with db.session(engine) as session:
            started = time.perf_counter()
            prospects.store_one_by_one(session, datetime.now(UTC), wanted, result.report)
            session.commit()
            rate = len(wanted) / (time.perf_counter() - started)
    finally:
        engine.dispose()
    if result.report.stored != len(wanted):
        sys.exit(f"one by one went wrong: {result.report.errors[:3]}")
    return rate


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "hubspot.csv"
        write_export(export, args.rows, args.companies)
        parse = parse_rate(export)
        print(f"{args.rows} rows, {args.companies} companies; plain csv parsing: {parse:,.0f} rows/s")
        print(f"{'database':12} {'import':>12} {'re-import':>12} {'one by one':>12}  (rows/s; x = times one by one)")
        targets = [("sqlite", contextlib.nullcontext(f"sqlite:///{tmp}/bench.db"),
                    contextlib.nullcontext(f"sqlite:///{tmp}/one.db")),
                   ("postgresql", fresh_postgres(args.database), fresh_postgres(args.database))]
        for name, batched_db, single_db in targets:
            with batched_db as url:
                first, again = import_rates(url, export, args.rows)
            with single_db as url:
                single = one_by_one_rate(url, export, args.one_by_one)
            print(f"{name:12} {first:>12,.0f} {again:>12,.0f} {single:>12,.0f}  "
                  f"import {first / single:.1f}x, re-import {again / single:.1f}x; "
                  f"parsing is {parse / first:.0f}x the import")


if __name__ == "__main__":
    main()
