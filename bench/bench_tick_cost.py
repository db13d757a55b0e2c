"""Does a tick cost what its due work costs, whatever the size of the database? Prints figures only.

The target (#14): with 1,000 enrollments due, a tick on a database of 1,000,000 enrollments
(with their touches and decisions) costs at most twice a tick on one of 10,000, and the
worker's memory is flat in the number of enrollments with future steps.

For each size a throw-away PostgreSQL database is filled server-side (INSERT ... SELECT
generate_series: millions of rows in seconds, no Python loop): N prospects and N
enrollments, of which 1,000 are due now at their first email; of the rest, most wait in
the future at a later step (each with its sent intro touch and three decisions), some are
finished and one in twenty is paused by hand (the tick also looks for pauses that ended).
Then the same 1,000 are ticked (sent to Postfix's smtp-sink), put back, and ticked again;
the median of the rounds is the tick's cost. A last round runs under tracemalloc for the
peak memory a tick allocates.

    .venv/bin/python bench/bench_tick_cost.py                       # 10,000 and 1,000,000
    .venv/bin/python bench/bench_tick_cost.py --sizes 10000 100000 --rounds 3
    .venv/bin/python bench/bench_tick_cost.py --database postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path

from bench_send import SEQUENCE, bench_settings, throwaway_database
from smtp_sink import SinkMissing, SmtpSink
from sqlalchemy import text
from sqlalchemy.engine import Engine

from channels.email import SmtpSender
from sequencer.app import wiring
from sequencer.core import db
from sequencer.core.clock import SystemClock
from sequencer.core.models import DomainCheck
from sequencer.engine.tick import tick
from sequencer.sending import mailboxes
from sequencer.sequences.versions import sync

DUE = 1_000
TARGET_RATIO = 2.0
NOW = "(now() at time zone 'utc')"

# bench_send's sequence, with texts that need no enrolling signal or account (none is loaded).
TEXT = "Hi {{ prospect.first_name }},\n\nWorth a 15-minute look next week?\n\n{{ sender.name }}\n"


def write_sequence(root: Path, addresses: list[str]) -> None:
    (root / "sequences").mkdir(parents=True)
    (root / "steps").mkdir()
    sequence = SEQUENCE.format(mailboxes=", ".join(addresses)).replace(
        '"{{ account.name }}: an idea after your {{ signal.topic }} research"', '"An idea, {{ prospect.first_name }}"')
    (root / "sequences" / "bench.yaml").write_text(sequence)
    for name in ("first.j2", "bump.j2"):
        (root / "steps" / name).write_text(TEXT)


# Rows for enrollment i (1..N): the first DUE are due now at step 0; then, by i: one in twenty
# paused by hand, one in two (of the rest) finished, the others waiting in the future at step 1.
_LOAD = [
    f"""INSERT INTO prospect (email, first_name, last_name, title, timezone, timezone_source, country, region,
                              phone, linkedin_url, owner, custom, created_at)
        SELECT 'p' || i || '@d' || i || '.example', 'Dana', '', '', 'UTC', '', '', '', '', '', '', '{{}}', {NOW}
        FROM generate_series(1, :n) AS i""",
    f"""INSERT INTO enrollment (prospect_id, sequence_version_id, sequence_name, state, reason, rule, current_step,
                                next_due_at, step_started_at, waiting_for, mailbox_id, thread_message_id,
                                thread_subject, enrolled_at, finished_at, version)
        SELECT i, :version, 'bench',
               CASE WHEN i <= :due THEN 'active' WHEN i % 20 = 0 THEN 'paused' WHEN i % 2 = 0 THEN 'finished'
                    ELSE 'active' END,
               '', '', CASE WHEN i <= :due THEN 0 ELSE 1 END,
               CASE WHEN i <= :due THEN {NOW} - interval '1 minute' WHEN i % 2 = 0 THEN NULL
                    ELSE {NOW} + interval '2 days' END,
               {NOW}, '', CASE WHEN i <= :due THEN NULL ELSE :mailbox END,
               CASE WHEN i <= :due THEN '' ELSE 'm' || i || '@outreach0.example' END,
               CASE WHEN i <= :due THEN '' ELSE 'Prospect: an idea' END,
               {NOW} - interval '1 day', CASE WHEN i > :due AND i % 20 <> 0 AND i % 2 = 0 THEN {NOW} END, 3
        FROM generate_series(1, :n) AS i""",
    f"""INSERT INTO touch (enrollment_id, prospect_id, step_index, step_id, channel, state, reason, variant,
                           mailbox_id, message_id, subject, recipient, created_at, sent_at)
        SELECT i, i, 0, 'first', 'email', 'sent', '', '', :mailbox, 'm' || i || '@outreach0.example',
               'Prospect: an idea', 'p' || i || '@d' || i || '.example', {NOW} - interval '1 day',
               {NOW} - interval '1 day'
        FROM generate_series(:due + 1, :n) AS i""",
    f"""INSERT INTO decision (at, kind, reason, rule, prospect_id, enrollment_id, touch_id, step_index, detail)
        SELECT {NOW} - interval '1 day', k.kind, k.kind, '', i, i, CASE WHEN k.kind = 'sent' THEN i - :due END,
               k.step, '{{}}'
        FROM generate_series(:due + 1, :n) AS i,
             (VALUES ('enrolled', 0), ('sent', 0), ('waiting', 1)) AS k(kind, step)""",
]
# Put the DUE enrollments back as they were before their tick.
_RESET = [
    "DELETE FROM decision WHERE enrollment_id <= :due",
    "DELETE FROM touch WHERE enrollment_id <= :due",
    "DELETE FROM capcounter",
    f"""UPDATE enrollment SET state = 'active', current_step = 0, next_due_at = {NOW} - interval '1 minute',
               waiting_for = '', mailbox_id = NULL, thread_message_id = '', thread_subject = '', finished_at = NULL
        WHERE id <= :due""",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000], help="enrollments per database")
    parser.add_argument("--rounds", type=int, default=3, help="timed ticks per size (median shown)")
    parser.add_argument("--mailboxes", type=int, default=10)
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a postgresql:// admin URL; a throw-away database is created there per size")
    args = parser.parse_args(argv)
    if any(size <= DUE for size in args.sizes):
        parser.error(f"every size must be larger than the {DUE} due")
    return args


def fill(engine: Engine, n: int, version_id: int, mailbox_id: int) -> float:
    started = time.perf_counter()
    with engine.begin() as conn:
        for statement in _LOAD:
            conn.execute(text(statement), {"n": n, "due": DUE, "version": version_id, "mailbox": mailbox_id})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    return time.perf_counter() - started


def prepare(session, settings, root: Path, now) -> tuple[int, list]:
    """The bench sequence and mailboxes, their domains checked good for ten years: the
    sequence version's id and the mailboxes (bench_workers uses the same workspace)."""
    write_sequence(root, [box["address"] for box in settings.mailboxes])
    sync(session, now, root)
    boxes = mailboxes.sync_from_settings(session, settings, now.date())
    for domain in sorted({box.sending_domain for box in boxes}):
        session.add(DomainCheck(domain=domain, status="pass", checked_at=now, report={},
                                expires_at=now + timedelta(days=3650), last_good_status="pass", last_good_at=now))
    session.commit()
    return session.execute(text("SELECT id FROM sequenceversion WHERE name = 'bench'")).scalar_one(), boxes


def measure(size: int, args: argparse.Namespace, sink: SmtpSink) -> dict:
    with tempfile.TemporaryDirectory() as folder, throwaway_database(args.database, Path(folder)) as url:
        root = Path(folder) / "templates"
        settings = bench_settings(url, root, sink, args.mailboxes)
        engine = db.make_engine(url)
        db.migrate(engine)
        now = SystemClock().now()
        with db.session(engine) as session:
            version_id, boxes = prepare(session, settings, root, now)
            loaded = fill(engine, size, version_id, boxes[0].id)
        sender = SmtpSender()
        runtime = wiring.build(settings, sender=sender, check_domains=True)
        seconds, peaks = [], []
        try:
            for round_ in range(args.rounds + 1):
                with engine.begin() as conn:
                    for statement in _RESET:
                        conn.execute(text(statement), {"due": DUE})
                with db.session(engine) as session:  # a fresh session, as a Celery task opens
                    if round_ == args.rounds:
                        tracemalloc.start()
                    started = time.perf_counter()
                    report = tick(session, SystemClock(), runtime, limit=DUE)
                    elapsed = time.perf_counter() - started
                    if round_ == args.rounds:
                        peaks.append(tracemalloc.get_traced_memory()[1])
                        tracemalloc.stop()
                    else:
                        seconds.append(elapsed)
                if report.outcomes.get("sent") != DUE:
                    raise RuntimeError(f"size {size}: the tick did {report.outcomes}, not {DUE} sent")
        finally:
            sender.close()
            engine.dispose()
    return {"size": size, "load_s": loaded, "tick_s": statistics.median(seconds), "all_s": seconds,
            "peak_mb": peaks[0] / 1e6}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with SmtpSink() as sink:
            results = [measure(size, args, sink) for size in args.sizes]
    except SinkMissing as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"tick of {DUE:,} due emails (median of {args.rounds}), PostgreSQL, {args.mailboxes} mailboxes -> smtp-sink")
    print(f"{'enrollments':>12} {'load s':>8} {'tick s':>8} {'touches/s':>10} {'peak MB':>8}  rounds")
    for row in results:
        rounds = ", ".join(f"{s:.2f}" for s in row["all_s"])
        print(f"{row['size']:>12,} {row['load_s']:>8.1f} {row['tick_s']:>8.2f} {DUE / row['tick_s']:>10.0f} "
              f"{row['peak_mb']:>8.1f}  {rounds}")
    small, large = results[0], results[-1]
    ratio = large["tick_s"] / small["tick_s"]
    memory = large["peak_mb"] / small["peak_mb"]
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    print(f"cost ratio {large['size']:,} / {small['size']:,}: {ratio:.2f} ({verdict} the target of at most "
          f"{TARGET_RATIO:g}); tick memory ratio {memory:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
