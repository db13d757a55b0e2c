"""Where a guarded touch's time goes, phase by phase (wall clock, no profiler overhead).

Builds the same workspace as ``bench_send.py``, wraps the engine's phase functions
with timers, and drives N first touches through one runtime. Prints milliseconds per
touch for each phase (nested phases are included in their callers; ``wire``, the MIME
message, runs in the sending threads and is summed over them), SQL statements
per touch by verb, commits per touch, and any statement SQLAlchemy had to compile
during the run (a statement compiled per send is a performance bug).

    .venv/bin/python bench/phases.py --n 1000
"""

from __future__ import annotations

import argparse
import collections
import shutil
import tempfile
import time
from pathlib import Path

from bench_send import (
    bench_settings,
    fire_signals,
    load_suppression,
    prepare,
    throwaway_database,
    variant,
)
from smtp_sink import SmtpSink
from sqlalchemy import event
from sqlalchemy.sql import compiler

import channels.email as email_channel
from sequencer.core import db, decisions
from sequencer.core.clock import SystemClock
from sequencer.engine import send_batch, steps
from sequencer.engine import tick as engine_module
from sequencer.enrollments import lifecycle
from sequencer.intake import enrolling
from sequencer.sending import caps, mailboxes

PHASES = [
    (enrolling, "process_batch"), (lifecycle, "create"), (engine_module, "_load_due"),
    (steps, "_touch"), (steps, "_plan_email"), (mailboxes, "choose"),
    (steps, "render_touch"), (send_batch, "send_planned"), (send_batch, "_claim"),
    (caps, "reserve"), (caps, "reserve_all"), (email_channel.SmtpSender, "send_many"), (email_channel, "wire"),
    (send_batch, "_record_sent"), (lifecycle, "step_on"), (decisions, "record"), (lifecycle, "claim"),
    (lifecycle, "claim_many"),
]


def timed(owner: object, name: str, seconds: collections.Counter, calls: collections.Counter) -> None:
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            seconds[name] += time.perf_counter() - started
            calls[name] += 1

    setattr(owner, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--suppression", type=int, default=20_000)
    parser.add_argument("--mailboxes", type=int, default=50)
    args = parser.parse_args()
    seconds: collections.Counter = collections.Counter()
    calls: collections.Counter = collections.Counter()
    for owner, name in PHASES:
        timed(owner, name, seconds, calls)
    compiled: collections.Counter = collections.Counter()
    statements: collections.Counter = collections.Counter()
    commits = [0]
    measuring = [False]
    original_init = compiler.SQLCompiler.__init__

    def counting_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        if measuring[0]:
            compiled[self.string[:100]] += 1

    compiler.SQLCompiler.__init__ = counting_init
    folder = Path(tempfile.mkdtemp(prefix="sequencer-phases-"))
    try:
        with SmtpSink() as sink, throwaway_database("sqlite", folder) as url:
            engine = db.make_engine(url)
            settings = bench_settings(url, folder / "templates", sink, args.mailboxes)
            db.migrate(engine)
            load_suppression(engine, args.suppression, SystemClock().now())
            event.listen(engine, "before_cursor_execute",
                         lambda conn, cursor, statement, *rest: statements.update([statement.split()[0]]))
            event.listen(engine, "commit", lambda conn: commits.__setitem__(0, commits[0] + 1))
            with db.session(engine) as session:
                prepare(session, settings, args.n)
                fire_signals(session, args.n)
                runtime, context = variant("guarded", settings)
                statements.clear()
                commits[0] = 0
                seconds.clear()
                calls.clear()
                measuring[0] = True
                started = time.perf_counter()
                sent = 0
                with context:
                    while sent < args.n:
                        sent += engine_module.tick(session, SystemClock(), runtime, limit=1000).outcomes.get("sent", 0)
                total = time.perf_counter() - started
                runtime.sender.close()
            engine.dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    n = args.n
    print(f"{n:,} guarded first touches in {total:.2f} s = {n / total:,.0f}/s ({total * 1e3 / n:.2f} ms per touch)")
    for name, spent in seconds.most_common():
        print(f"  {name:<15} {spent * 1e3 / n:6.3f} ms/touch   ({calls[name]:,} calls)")
    print("SQL per touch: " + ", ".join(f"{verb} {count / n:.2f}" for verb, count in statements.most_common())
          + f"; commits {commits[0] / n:.3f}")
    print("compiled during the run (each once is fine):")
    for text, count in compiled.most_common(8):
        print(f"  {count:4}  {text}")


if __name__ == "__main__":
    main()
