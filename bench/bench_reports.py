"""Report benchmark: load N touches (with their prospects, signals, enrollments, bounces, complaints,
replies and meetings) and time both reports over periods of growing length.

Figures, never timed assertions. The load is one ``INSERT ... SELECT`` per table over
``generate_series`` (PostgreSQL) or a recursive CTE (SQLite): the rows are made by the database
itself, so loading 10M touches is minutes, not hours. Touches are spread evenly over
``--days`` (365), two per enrollment, from ``--mailboxes`` (50) mailboxes over 10 domains.
Per 1,000 touches: 20 bounces (hard/soft/block, five reasons), 1 complaint, 30 replies;
per 1,000 enrollments, 5 meetings. Each report runs ``--repeat`` times per period (the first
run warms the cache and is shown apart); the median of the rest is reported.

    .venv/bin/python bench/bench_reports.py --database sqlite --touches 1000000
    .venv/bin/python bench/bench_reports.py --database postgresql://postgres@127.0.0.1:5432/postgres --touches 10000000

A throw-away database is created (a temp SQLite file, or a new database on that server) and
dropped afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Table, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

import channels.tasks  # noqa: F401  (every table, as the migrations know them)
import suppression.models  # noqa: F401
from sequencer.core.config import Settings
from sequencer.core.db import make_engine, migrate
from sequencer.core.db import session as new_session
from sequencer.reports import deliverability, pipeline
from sequencer.reports.period import scope

NOW = datetime(2026, 12, 1, tzinfo=UTC)
REASONS = ("user_unknown", "mailbox_full", "blocklisted", "host_unknown", "policy")


def series(dialect: str, n: int) -> tuple[str, str]:
    """(prefix, FROM clause) giving rows x = 1..n."""
    if dialect == "sqlite":
        return f"WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {n}) ", "FROM g"
    return "", f"FROM generate_series(1, {n}) AS g(x)"


def moment(dialect: str, seconds: str) -> str:
    """NOW - days + ``seconds`` (an SQL expression), as each database stores a UTCDateTime."""
    base = (NOW - timedelta(days=ARGS.days)).replace(tzinfo=None)
    if dialect == "sqlite":
        return f"(strftime('%Y-%m-%d %H:%M:%f', '{base:%Y-%m-%d %H:%M:%S}', '+' || ({seconds}) || ' seconds') || '000')"
    return f"(TIMESTAMP '{base:%Y-%m-%d %H:%M:%S}' + ({seconds}) * INTERVAL '1 second')"


def literal(value: Any, dialect: str) -> str:
    if isinstance(value, bool):
        return ("1" if value else "0") if dialect == "sqlite" else ("TRUE" if value else "FALSE")
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict | list):
        return "'{}'" if isinstance(value, dict) else "'[]'"
    return "'" + str(value).replace("'", "''") + "'"


def model_default(table: Table, name: str) -> Any:
    """The value a new row of the model gets for ``name`` (its default or default factory)."""
    model = next(m.class_ for m in SQLModel._sa_registry.mappers if m.local_table is table)
    field = model.model_fields[name]
    return field.default_factory() if field.default_factory is not None else field.default


def insert(engine: Engine, name: str, n: int, values: dict[str, str]) -> float:
    """Fill ``name`` with n rows: ``values`` gives SQL per column (over x); every other NOT NULL
    column takes the model's default, so a column added later does not break the benchmark."""
    table: Table = SQLModel.metadata.tables[name]
    dialect = engine.dialect.name
    columns, exprs = [], []
    for column in table.columns:
        if column.name in values:
            columns.append(column.name)
            exprs.append(values[column.name])
        elif not column.nullable and column.server_default is None and not column.primary_key:
            columns.append(column.name)
            exprs.append(literal(model_default(table, column.name), dialect))
    prefix, source = series(dialect, n)
    started = time.perf_counter()
    with engine.begin() as conn:
        if dialect == "postgresql":
            # The rows are consistent by construction (every id they point at is loaded first), so the
            # per-row foreign-key triggers are skipped for the load, as pg_restore does.
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(f"{prefix}INSERT INTO {name} ({', '.join(columns)}) SELECT {', '.join(exprs)} {source}"))
        if dialect == "postgresql" and "id" in values:
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), {n})"))
    return time.perf_counter() - started


def load(engine: Engine, touches: int, mailboxes: int) -> dict[str, float]:
    d = engine.dialect.name
    people = touches // 2
    span = ARGS.days * 86400
    step = span / touches  # seconds between touches
    mod = "%"
    took = {}
    took["mailbox"] = insert(engine, "mailbox", mailboxes, {
        "id": "x", "address": f"'sdr' || x || '@outreach' || (x {mod} 10) || '.example'",
        "sending_domain": f"'outreach' || (x {mod} 10) || '.example'", "daily_cap": "500",
        "owner": "'sdr' || x || '@acme.example'"})
    took["sequenceversion"] = insert(engine, "sequenceversion", 1, {
        "id": "x", "name": "'outbound'", "version": "1", "content_hash": "'bench'",
        "definition": """'{"steps": [{"index": 0, "id": "intro", "kind": "email"}, """
                      """{"index": 1, "id": "bump", "kind": "email"}]}'"""})
    took["prospect"] = insert(engine, "prospect", people, {"id": "x", "email": "'p' || x || '@c' || x || '.example'"})
    first = f"(2 * x - 1) * {step}"  # when the first of a person's two touches goes
    took["signal"] = insert(engine, "signal", people, {
        "id": "x",
        "type": f"CASE x {mod} 3 WHEN 0 THEN 'intent_surge' WHEN 1 THEN 'funding_round' ELSE 'job_change' END",
        "dedupe_key": "'s' || x", "prospect_id": "x", "source": "'bench'",
        "occurred_at": moment(d, f"{first} - (x {mod} 600)"), "received_at": moment(d, f"{first} - (x {mod} 600)")})
    took["enrollment"] = insert(engine, "enrollment", people, {
        "id": "x", "prospect_id": "x", "sequence_version_id": "1", "sequence_name": "'outbound'", "signal_id": "x",
        "mailbox_id": f"1 + x {mod} {mailboxes}", "state": "'finished'", "current_step": "2",
        "enrolled_at": moment(d, f"{first} - (x {mod} 600)")})
    took["touch"] = insert(engine, "touch", touches, {
        "id": "x", "enrollment_id": "(x + 1) / 2", "prospect_id": "(x + 1) / 2", "step_index": f"(x + 1) {mod} 2",
        "step_id": f"CASE x {mod} 2 WHEN 1 THEN 'intro' ELSE 'bump' END", "channel": "'email'", "state": "'sent'",
        "variant": f"CASE (x / 2) {mod} 2 WHEN 0 THEN 'A' ELSE 'B' END",
        "mailbox_id": f"1 + ((x + 1) / 2) {mod} {mailboxes}", "recipient": "'p' || ((x + 1) / 2) || '@c.example'",
        "created_at": moment(d, f"x * {step}"), "sent_at": moment(d, f"x * {step}")})
    bounces = touches // 50
    took["bounce"] = insert(engine, "bounce", bounces, {
        "at": moment(d, f"(50 * x) * {step} + 600"), "source": f"CASE x {mod} 4 WHEN 0 THEN 'smtp' ELSE 'dsn' END",
        "touch_id": "50 * x", "mailbox_id": f"1 + ((50 * x + 1) / 2) {mod} {mailboxes}",
        "bounce_type": f"CASE x {mod} 3 WHEN 0 THEN 'hard' WHEN 1 THEN 'soft' ELSE 'block' END",
        "bounce_reason": "CASE x % 5 " + " ".join(f"WHEN {i} THEN '{r}'" for i, r in enumerate(REASONS)) + " END",
        "status_code": f"CASE x {mod} 3 WHEN 0 THEN '5.1.1' WHEN 1 THEN '4.2.2' ELSE '5.7.1' END",
        "diagnostic": "'550 5.1.1 user unknown'", "about_our_message": literal(False, d)})
    took["inboundmessage"] = insert(engine, "inboundmessage", touches * 31 // 1000, {
        "dedupe_key": "'m' || x", "kind": f"CASE WHEN x {mod} 31 = 0 THEN 'complaint' ELSE 'reply' END",
        "touch_id": "1 + 32 * x", "enrollment_id": "(32 * x + 2) / 2",
        "received_at": moment(d, f"(32 * x) * {step} + 3600")})
    took["meeting"] = insert(engine, "meeting", people // 200, {
        "uid": "'m' || x || '@bench'", "prospect_id": "200 * x", "enrollment_id": "200 * x",
        "sdr": f"'sdr' || (1 + x {mod} {mailboxes}) || '@acme.example'", "ae": "'ae@acme.example'",
        "start_at": moment(d, f"(400 * x) * {step} + 86400 * 3"),
        "state": f"CASE x {mod} 5 WHEN 0 THEN 'no_show' WHEN 1 THEN 'canceled' ELSE 'held' END",
        "no_show_fault": f"CASE x {mod} 5 WHEN 0 THEN 'prospect' ELSE '' END", "held_minutes": "30",
        "held_at": moment(d, f"(400 * x) * {step} + 86400 * 3"),
        "acceptance": f"CASE x {mod} 2 WHEN 0 THEN 'accepted' ELSE 'pending' END",
        "decided_at": moment(d, f"(400 * x) * {step} + 86400 * 4"), "created_at": moment(d, f"(400 * x) * {step}")})
    # What autovacuum does to a live table soon after a bulk load: planner statistics, and the
    # visibility map that lets PostgreSQL answer the period scans from the index alone.
    started = time.perf_counter()
    if d == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    took["vacuum/analyze"] = time.perf_counter() - started
    return took


def timed(engine: Engine, builder: Any, days: int, repeat: int) -> tuple[float, float, dict]:
    runs = []
    for _ in range(repeat):
        with new_session(engine) as session:
            started = time.perf_counter()
            document = builder(session, NOW, Settings(), scope(session, NOW, since=NOW - timedelta(days=days),
                                                               until=NOW))
            runs.append(time.perf_counter() - started)
    return runs[0], statistics.median(runs[1:] or runs), document


def main() -> None:
    url, drop = target(ARGS.database)
    engine = make_engine(url)
    try:
        migrate(engine)
        started = time.perf_counter()
        took = load(engine, ARGS.touches, ARGS.mailboxes)
        print(f"{engine.dialect.name}: loaded {ARGS.touches:,} touches over {ARGS.days} days in "
              f"{time.perf_counter() - started:.0f} s ({', '.join(f'{k} {v:.0f}s' for k, v in took.items())})")
        print(f"{'period':>8} {'touches in it':>14} {'deliverability':>16} {'pipeline':>10}   (median s; first run)")
        for days in ARGS.periods:
            in_period = ARGS.touches * days // ARGS.days
            d_first, d_median, made = timed(engine, deliverability.build, days, ARGS.repeat)
            p_first, p_median, piped = timed(engine, pipeline.build, days, ARGS.repeat)
            totals = made["totals"]
            print(f"{days:>6} d {in_period:>14,} {d_median:>10.3f} ({d_first:.3f}) {p_median:>7.3f} ({p_first:.3f})"
                  f"   [report: {totals['attempted']:,} sent, {totals['bounces']:,} bounces, "
                  f"{totals['complaints']:,} complaints, {totals['replies']:,} replies; "
                  f"{sum(r['leads'] for r in piped['speed_to_lead']):,} leads, "
                  f"{piped['meetings']['groups']['all'][0]['scheduled'] if piped['meetings']['groups']['all'] else 0}"
                  " meetings]")
    finally:
        engine.dispose()
        if not ARGS.keep:
            drop()


def target(database: str) -> tuple[str, Any]:
    if database == "sqlite":
        folder = tempfile.TemporaryDirectory()
        path = Path(folder.name) / "bench.db"
        return f"sqlite:///{path}", folder.cleanup
    name = f"bench_reports_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return database.rsplit("/", 1)[0] + f"/{name}", drop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="sqlite", help="sqlite, or a PostgreSQL admin URL")
    parser.add_argument("--touches", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--mailboxes", type=int, default=50)
    parser.add_argument("--periods", type=int, nargs="+", default=[7, 30, 90])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the database (its URL is printed)")
    ARGS = parser.parse_args()
    main()
