"""Do N tick processes on PostgreSQL share the due work, and how many touches/s do 1, 2 and 4 give?

Each worker is a real OS process running the loop a Celery tick task runs (``tick`` on its
own engine, SMTP sender and session) against one shared PostgreSQL database, sending to
Postfix's smtp-sink. The database is filled server-side with N prospects whose first email
is due; for each worker count the same N are put back and the workers start together and
tick until nothing is due. The check is that the sink received exactly N and the database
recorded N sent touches (no duplicate, no loss), whatever the count; the figure is
touches/s, next to a plain-smtplib baseline to the same sink measured in the same run (the
sink's own limit) and how many of the machine's cores were busy during the round (all of
them busy: the CPU is the limit, whoever uses it).

    .venv/bin/python bench/bench_workers.py                  # N=6,000; 1, 2 and 4 workers
    .venv/bin/python bench/bench_workers.py --n 2000 --workers 1 2
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench_send import bench_settings, sample_message, smtplib_baseline, throwaway_database
from bench_tick_cost import _LOAD, _RESET, prepare
from smtp_sink import SinkMissing, SmtpSink
from sqlalchemy import text

from channels.email import SmtpSender
from sequencer.app import wiring
from sequencer.core import db
from sequencer.core.clock import SystemClock
from sequencer.core.config import Settings
from sequencer.engine.tick import tick

LIMIT = 1000  # tick(limit=...), as the Celery tick task uses


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=6_000, help="first emails due")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--mailboxes", type=int, default=20)
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a postgresql:// admin URL; a throw-away database is created there")
    return parser.parse_args(argv)


def work(settings: Settings, start: multiprocessing.synchronize.Event, results: multiprocessing.Queue) -> None:
    """One worker process: tick until two ticks in a row find nothing due; report what it did."""
    engine = db.make_engine(settings.database_url)
    sender = SmtpSender()
    runtime = wiring.build(settings, sender=sender, check_domains=True)
    outcomes: Counter = Counter()
    idle = 0
    start.wait()
    try:
        while idle < 2:
            with db.session(engine) as session:
                report = tick(session, SystemClock(), runtime, limit=LIMIT)
            outcomes.update(report.outcomes)
            idle = idle + 1 if not report.advanced else 0
    finally:
        sender.close()
        engine.dispose()
    results.put(dict(outcomes))


def busy_cores() -> float:
    """CPU seconds the whole machine has spent not idle so far (/proc/stat): over a round's
    wall time, how many cores were busy (workers, PostgreSQL, the sink, and the neighbours)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def round_(settings: Settings, engine, n: int, workers: int, sink: SmtpSink) -> dict:
    with engine.begin() as conn:
        for statement in _RESET:
            conn.execute(text(statement), {"due": n})
    before = sink.received()
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    processes = [context.Process(target=work, args=(settings, start, results)) for _ in range(workers)]
    for process in processes:
        process.start()
    time.sleep(3)  # let every process import and connect before the clock starts
    cpu = busy_cores()
    started = time.perf_counter()
    start.set()
    reports = [results.get(timeout=900) for _ in processes]
    seconds = time.perf_counter() - started
    cpu = busy_cores() - cpu
    for process in processes:
        process.join(timeout=60)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM touch WHERE state = 'sent'")).scalar_one()
    sent = sum(report.get("sent", 0) for report in reports)
    received = sink.received() - before
    if not sent == stored == received == n:
        raise RuntimeError(f"{workers} workers: {sent} reported sent, {stored} stored, {received} received, "
                           f"of {n}: {reports}")
    return {"workers": workers, "seconds": seconds, "rate": n / seconds, "busy": cpu / seconds,
            "lost_races": sum(report.get("lost_race", 0) for report in reports),
            "shares": sorted(report.get("sent", 0) for report in reports)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        sink = SmtpSink().__enter__()
    except SinkMissing as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        with tempfile.TemporaryDirectory() as folder, throwaway_database(args.database, Path(folder)) as url:
            root = Path(folder) / "templates"
            settings = bench_settings(url, root, sink, args.mailboxes)
            engine = db.make_engine(url)
            db.migrate(engine)
            now = SystemClock().now()
            with db.session(engine) as session:
                version, boxes = prepare(session, settings, root, now)
            with engine.begin() as conn:
                for statement in _LOAD:
                    conn.execute(text(statement), {"n": args.n, "due": args.n, "version": version,
                                                   "mailbox": boxes[0].id})
            message = sample_message(settings)
            baselines = [smtplib_baseline(sink, message, 2000)]
            rows = [round_(settings, engine, args.n, workers, sink) for workers in args.workers]
            baselines.append(smtplib_baseline(sink, message, 2000))
            engine.dispose()
    finally:
        sink.__exit__(None, None, None)
    base = statistics.median(baselines)
    print(f"{args.n:,} first emails due, PostgreSQL, {args.mailboxes} mailboxes -> smtp-sink; "
          f"{os.cpu_count()} CPUs on this machine")
    print(f"plain smtplib to the same sink, one connection: {base:,.0f} sends/s (runs: "
          + ", ".join(f"{b:,.0f}" for b in baselines) + ")")
    print(f"{'workers':>7} {'seconds':>8} {'touches/s':>10} {'vs 1':>6} {'busy':>5} {'lost races':>10}  sent by each")
    first = rows[0]["rate"]
    for row in rows:
        print(f"{row['workers']:>7} {row['seconds']:>8.1f} {row['rate']:>10,.0f} {row['rate'] / first:>6.2f} "
              f"{row['busy']:>5.2f} {row['lost_races']:>10}  {row['shares']}")
    print(f"busy: cores of the {os.cpu_count()} the machine kept busy during the round (from /proc/stat); every "
          f"round sent exactly {args.n:,} (sink, database and workers agree)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
