"""Profile the guarded send path with cProfile: where does a touch's time go?

Builds the same workspace as ``bench_send.py`` (smaller by default), stores N signals,
then runs the tick loop under cProfile and prints the top functions by own time and by
cumulative time, plus the share of time spent in the database driver, SMTP and Jinja.

    .venv/bin/python bench/profile_send.py --n 2000 --suppression 1000000 --mailboxes 50
    .venv/bin/python bench/profile_send.py --save /tmp/send.prof   # for snakeviz / pstats
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import tempfile
from pathlib import Path

from bench_send import (
    Run,
    bench_settings,
    drive,
    fire_signals,
    load_suppression,
    prepare,
    throwaway_database,
    variant,
)
from smtp_sink import SmtpSink

from sequencer.core import db
from sequencer.core.clock import SystemClock


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--suppression", type=int, default=1_000_000)
    parser.add_argument("--mailboxes", type=int, default=50)
    parser.add_argument("--database", default="sqlite")
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--variant", choices=("guarded", "unguarded"), default="guarded")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--save", type=Path, help="also write the raw profile here")
    return parser.parse_args()


def buckets(stats: pstats.Stats) -> dict[str, float]:
    """Cumulative seconds in a few outside libraries, by the file their code lives in."""
    totals = {"sqlite3/psycopg driver (execute, fetch, commit)": 0.0, "smtplib (network)": 0.0,
              "jinja2 (environment + render)": 0.0}
    for (filename, _, name), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        in_sqlite = filename == "~" and ("sqlite3.Cursor" in name or "sqlite3.Connection" in name)
        if in_sqlite or ("psycopg/cursor.py" in filename and name == "execute"):
            totals["sqlite3/psycopg driver (execute, fetch, commit)"] += cumulative
        elif filename.endswith("smtplib.py") and name in ("sendmail", "send_message"):
            totals["smtplib (network)"] += cumulative
        elif filename.endswith("rendering.py") and name == "render":
            totals["jinja2 (environment + render)"] += cumulative
    return totals


def main() -> None:
    args = parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sequencer-profile-"))
    try:
        with SmtpSink() as sink, throwaway_database(args.database, folder) as url:
            engine = db.make_engine(url)
            settings = bench_settings(url, folder / "templates", sink, args.mailboxes)
            db.migrate(engine)
            load_suppression(engine, args.suppression, SystemClock().now())
            with db.session(engine) as session:
                prepare(session, settings, args.n)
                fire_signals(session, args.n)
                engine_runtime, context = variant(args.variant, settings)
                run = Run(args.variant)
                profiler = cProfile.Profile()
                with context:
                    profiler.enable()
                    drive(session, engine_runtime, args.n, args.limit, run)
                    profiler.disable()
                engine_runtime.sender.close()
            engine.dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{args.variant}: {run.touches:,} touches in {run.seconds:.1f} s = {run.rate:,.0f}/s "
          f"(under cProfile; slower than bench_send)")
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    for label, seconds in buckets(stats).items():
        print(f"  {label:<50} {seconds:7.2f} s  {seconds / total:6.1%}")
    if args.save:
        stats.dump_stats(args.save)
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(r"(sequencer|channels|suppression)/", args.top)


if __name__ == "__main__":
    main()
