"""Profile ``enrolling.process_stored`` for a batch of signals about new people; prints figures only.

A fresh PostgreSQL database (or SQLite file), the shipped sequences loaded, ``--n`` form_fill (demo request)
signals each about a person not yet known (so each creates a prospect and its account, and
most enroll). Prints ms per signal, the SQL statements sent (counted by a SQLAlchemy
``before_cursor_execute`` listener; an executemany counts once) and, with ``--profile``,
cProfile's top functions by cumulative time.

    .venv/bin/python bench/profile_signals.py --n 500
    .venv/bin/python bench/profile_signals.py --n 500 --profile 25
    .venv/bin/python bench/profile_signals.py --database sqlite
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import pstats
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import event, func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_intake import fresh_postgres

from sequencer.core import db
from sequencer.core.config import REPO_TEMPLATES
from sequencer.core.models import Enrollment, Prospect
from sequencer.intake import enrolling, signals
from sequencer.sequences import versions


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=500, help="signals, each about a new person")
    parser.add_argument("--rounds", type=int, default=3, help="batches of --n (each about other new people)")
    parser.add_argument("--profile", type=int, default=0, help="print this many cProfile lines (last round)")
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="'sqlite' or a PostgreSQL admin URL (a fresh database is made and dropped)")
    return parser.parse_args(argv)


def run(url: str, args: argparse.Namespace) -> None:
    engine = db.make_engine(url)
    db.migrate(engine)
    statements: Counter[str] = Counter()

    @event.listens_for(engine, "before_cursor_execute")
    def count(conn, cursor, statement, parameters, context, executemany):
        statements[statement.split(None, 1)[0].upper()] += 1

    try:
        with db.session(engine) as session:
            now = datetime.now(UTC)
            versions.sync(session, now, REPO_TEMPLATES / "sequences")
            session.commit()
            for round_ in range(args.rounds):
                items = [signals.SignalIn("form_fill", email=f"lead{n}@firm{round_}x{n}.example",
                                          payload={"first_name": f"Lead{n}", "form": "demo-request"},
                                          dedupe_key=f"r{round_}:{n}") for n in range(args.n)]
                ids = [r.id for r in signals.store_many(session, now, items)]
                statements.clear()
                profiler = cProfile.Profile() if args.profile and round_ == args.rounds - 1 else None
                started = time.perf_counter()
                with profiler or contextlib.nullcontext():
                    outcomes = enrolling.process_stored(session, now, ids)
                seconds = time.perf_counter() - started
                enrolled = sum(len(o.enrolled) for o in outcomes)
                print(f"  round {round_ + 1}: {args.n} signals in {seconds * 1000:7.1f} ms "
                      f"({seconds * 1000 / args.n:.2f} ms each), {enrolled} enrolled, "
                      f"{sum(statements.values())} statements {dict(statements)}")
                if profiler:
                    pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)
            prospects = session.exec(select(func.count()).select_from(Prospect)).one()
            enrollments = session.exec(select(func.count()).select_from(Enrollment)).one()
            print(f"  stored: {prospects[0]:,} prospects, {enrollments[0]:,} enrollments")
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="profile-signals-") as tmp:
        url_context = (contextlib.nullcontext(f"sqlite:///{Path(tmp) / 'bench.db'}") if args.database == "sqlite"
                       else fresh_postgres(args.database))
        with url_context as url:
            print(f"profile_signals: {args.database.split(':')[0]}, {args.rounds} x {args.n} new people")
            run(url, args)


if __name__ == "__main__":
    main()
