"""Benchmark signal intake: signals stored per second, and a whole ``signals import``; prints figures only.

For each database (a SQLite file in WAL mode, and a fresh PostgreSQL database):

* baseline - ``signals.store`` one signal at a time, one commit each: the path every
  import took before ``store_many`` (measured in the same run, on the same machine, so the
  ratio means something on a shared, noisy host);
* bulk - ``signals.store_many``: ``STORE_BATCH`` signals per statement and commit
  (COPY into a scratch table on PostgreSQL, insertmanyvalues on SQLite).

Then ``sequencer signals import FILE`` of ``--lines`` JSONL lines runs as its own process
on PostgreSQL with the shipped sequences loaded (an intent feed: the lines are about
``--people`` people, so the first signal of each creates the prospect and the rest are
judged against what is there): wall time, lines per second end to end, and the
process's peak resident memory (``ru_maxrss`` of the child), which is what bounded
streaming is about (the issue's figure before: 100,000 lines, about 8 minutes, 490 MB).

    .venv/bin/python bench/bench_intake.py                 # 100,000 lines
    .venv/bin/python bench/bench_intake.py --lines 20000   # quicker
    .venv/bin/python bench/bench_intake.py --database postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench_send import fresh_postgres  # one throw-away database for every bench

from sequencer.core import db
from sequencer.core.config import REPO_TEMPLATES
from sequencer.intake import signals

ROOT = Path(__file__).resolve().parents[1]
SEQUENCER = Path(sys.executable).with_name("sequencer")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--lines", type=int, default=100_000, help="lines of the imported file (and bulk signals)")
    parser.add_argument("--baseline", type=int, default=2_000, help="signals stored one by one for the baseline")
    parser.add_argument("--people", type=int, default=1_000, help="distinct prospects the imported lines are about")
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="the PostgreSQL server's admin URL (a fresh database is made and dropped)")
    return parser.parse_args(argv)


def items(count: int, tag: str) -> list[signals.SignalIn]:
    """Signals as a vendor feed sends them: a person each, a small payload, the feed's own key."""
    return [signals.SignalIn("intent_surge", email=f"p{n}@company{n % 5000}.example",
                             payload={"score": 80 + n % 20, "topic": "sales engagement"},
                             dedupe_key=f"{tag}:{n}") for n in range(count)]


def store_rates(url: str, lines: int, baseline: int) -> tuple[float, float]:
    """(baseline signals/s, bulk signals/s) on the database at ``url``."""
    engine = db.make_engine(url)
    db.migrate(engine)
    now = datetime.now(UTC)
    try:
        with db.session(engine) as session:
            one_by_one = items(baseline, "one")
            started = time.perf_counter()
            for item in one_by_one:
                signals.store(session, now, item)
            base = baseline / (time.perf_counter() - started)
            bulk_items = items(lines, "bulk")
            started = time.perf_counter()
            results = signals.store_many(session, now, bulk_items)
            bulk = lines / (time.perf_counter() - started)
            assert sum(not isinstance(r, ValueError) and not r.duplicate for r in results) == lines
    finally:
        engine.dispose()
    return base, bulk


def write_file(path: Path, lines: int, people: int) -> None:
    with path.open("w") as handle:
        for n in range(lines):
            who = n % people
            handle.write(json.dumps({"type": "intent_surge", "email": f"lead{who}@firm{who}.example",
                                     "first_name": f"Lead{who}", "score": 90, "topic": "sales engagement",
                                     "dedupe_key": f"file:{n}"}) + "\n")


def import_run(url: str, path: Path, work: Path) -> tuple[float, float, str]:
    """(seconds, peak MB, the command's last line) for ``sequencer signals import path``."""
    env = {**os.environ, "SEQUENCER_DATABASE_URL": url, "SEQUENCER_TEMPLATES": str(REPO_TEMPLATES),
           "SEQUENCER_CONFIG": str(work / "sequencer.toml")}
    (work / "sequencer.toml").write_text('secret_key = "bench-secret-0123456789abcdef"\n')
    subprocess.run([str(SEQUENCER), "sequences", "load"], env=env, cwd=work, check=True, capture_output=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run([str(SEQUENCER), "signals", "import", str(path)], env=env, cwd=work,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if done.returncode != 0:
        raise SystemExit(f"signals import failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return seconds, max(peak_kb, before) / 1024, done.stdout.strip().splitlines()[-1]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(f"bench_intake: {args.lines:,} signals in bulk, {args.baseline:,} one by one; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="bench-intake-") as tmp:
        work = Path(tmp)
        for name, url_context in (("sqlite", contextlib.nullcontext(f"sqlite:///{work / 'bench.db'}")),
                                  ("postgresql", fresh_postgres(args.database))):
            with url_context as url:
                base, bulk = store_rates(url, args.lines, args.baseline)
            print(f"  {name:10} stored/s: one by one {base:8,.0f}   store_many {bulk:8,.0f}   x{bulk / base:5.1f}")
        path = work / "signals.jsonl"
        write_file(path, args.lines, args.people)
        with fresh_postgres(args.database) as url:
            seconds, peak, last = import_run(url, path, work)
        print(f"  signals import, PostgreSQL, {args.lines:,} lines about {args.people:,} people "
              f"(store, then process each batch): {seconds:6.1f} s, "
              f"{args.lines / seconds:,.0f} lines/s end to end, peak RSS {peak:,.0f} MB")
        print(f"    {last}")


if __name__ == "__main__":
    main()
