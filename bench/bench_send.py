"""Benchmark the guarded email send path against Postfix's smtp-sink; prints figures only.

One run builds a throw-away database (SQLite file in WAL mode by default, or a fresh
PostgreSQL database), loads the suppression list, the mailboxes, the prospects and a
7-day 00:00-23:59 sequence, then for each variant stores N signals and drives the engine
exactly as ``sequencer run`` does - ``tick(session, SystemClock(), runtime, limit)`` in a
loop - until every first touch has been sent to smtp-sink.

Variants:

* guarded - the production runtime (``sequencer.app.wiring.build``): suppression and window
  guards, volume caps, mailbox rotation, domain health (pre-verified: fresh ``DomainCheck``
  rows with status pass, so no DNS is asked).
* unguarded - the same engine with ``Runtime.guards=[]``, no domain check and no caps.
  The engine has no switch for caps yet, so this script patches ``mailboxes.choose`` for
  that variant only: the mailboxes take turns, and the choice counts against no cap (so
  both variants send over the same 50 mailboxes and parallel connections).

The machine is shared and noisy, so every run measures its own baseline (one smtplib
connection sending same-sized messages to the same sink, single-threaded) before and
after the variants, and reports ratios next to the absolute figures.

    .venv/bin/python bench/bench_send.py                  # N=10,000, 1M suppression, 50 mailboxes
    .venv/bin/python bench/bench_send.py --quick          # smoke size
    .venv/bin/python bench/bench_send.py --database postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import resource
import shutil
import smtplib
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import psycopg
from smtp_sink import SinkMissing, SmtpSink
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from channels.email import SmtpSender
from channels.message import OutgoingEmail, build, new_message_id
from sequencer.app import wiring as runtime
from sequencer.core import db
from sequencer.core.clock import SystemClock
from sequencer.core.config import Settings
from sequencer.core.models import DomainCheck, Enrollment, Mailbox, Signal, Touch
from sequencer.engine.runtime import Runtime
from sequencer.engine.tick import tick
from sequencer.intake import prospects, signals
from sequencer.sending import mailboxes
from sequencer.sequences.versions import sync
from suppression.tokens import unsubscribe_headers, unsubscribe_url

TARGET_TOUCHES_PER_S = 500
TARGET_GUARD_OVERHEAD = 0.20
HUGE_CAP = 1_000_000_000
SENDING_DOMAINS = 10

SEQUENCE = """\
name: bench
owner: bench.sdr@acme.example
trigger:
  signals: [intent_surge]
window: {{days: mon-sun, start: "00:00", end: "23:59"}}
mailboxes: [{mailboxes}]
steps:
  - id: first
    kind: email
    subject: "{{{{ account.name }}}}: an idea after your {{{{ signal.topic }}}} research"
    template: first.j2
  - kind: wait
    business_days: 2
  - id: bump
    kind: email
    template: bump.j2
"""
FIRST = """\
Hi {{ prospect.first_name }},

I noticed {{ account.name }} has been researching {{ signal.topic }} this week. Teams in that
spot usually want two things: more first meetings from the accounts already showing
intent, and fewer hours spent on lists that never answer.

We help SDR teams start the right sequence the moment a signal lands, with caps and
suppression enforced before every touch, so nothing embarrassing goes out.

Worth a 15-minute look next week?

{{ sender.name }}
"""
BUMP = "Bumping this up, {{ prospect.first_name }} - worth a look?\n\n{{ sender.name }}"


@dataclass
class Run:
    """What one variant did: its figures and what was checked along the way."""

    name: str
    touches: int = 0
    seconds: float = 0.0
    ticks: int = 0
    signals_per_s: float = 0.0
    outcomes: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    per_mailbox: list[int] = field(default_factory=list)
    sink_received: int = 0

    @property
    def rate(self) -> float:
        return self.touches / self.seconds if self.seconds else 0.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="prospects, signals and first touches")
    parser.add_argument("--suppression", type=int, default=1_000_000, help="suppression entries to load")
    parser.add_argument("--mailboxes", type=int, default=50, help="sending mailboxes in the rotation")
    parser.add_argument("--database", default="sqlite",
                        help="'sqlite' (a temp file, WAL) or a postgresql:// admin URL; a throw-away "
                             "database is created on that server and dropped afterwards")
    parser.add_argument("--limit", type=int, default=1000, help="tick(limit=...), as `sequencer run` uses")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each variant this many times, alternating the order; medians are shown")
    parser.add_argument("--quick", action="store_true", help="smoke size: n=300, 20,000 suppression entries")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.suppression = 300, 20_000
    if args.n < 1 or args.mailboxes < 1 or args.suppression < 0 or args.repeat < 1:
        parser.error("--n, --mailboxes and --repeat must be positive, --suppression not negative")
    return args


@contextlib.contextmanager
def throwaway_database(choice: str, folder: Path) -> Iterator[str]:
    """Yield the URL of an empty database that is deleted afterwards."""
    if choice == "sqlite":
        yield f"sqlite:///{folder / 'bench.db'}"
        return
    if not choice.startswith("postgresql://"):
        raise SystemExit(f"--database: expected 'sqlite' or a postgresql:// URL, not {choice!r}")
    name = f"sequencer_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(choice, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield choice.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(choice, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fresh_postgres(admin: str) -> contextlib.AbstractContextManager[str]:
    """A throw-away database on the PostgreSQL server at ``admin`` (``throwaway_database``)."""
    return throwaway_database(admin, Path())


def mailbox_configs(count: int, sink: SmtpSink) -> list[dict]:
    """``count`` mailboxes spread over a few sending domains, all pointed at the sink."""
    return [
        {"address": f"sdr{i:03d}@outreach{i % SENDING_DOMAINS}.example", "display_name": f"SDR {i}",
         "smtp_host": sink.host, "smtp_port": sink.port, "daily_cap": HUGE_CAP}
        for i in range(count)
    ]


def bench_settings(url: str, root: Path, sink: SmtpSink, mailbox_count: int) -> Settings:
    """Settings with every cap far above N, so caps are counted but never defer."""
    return Settings(
        database_url=url, templates_dir=root, secret_key="bench-secret",
        mailboxes=mailbox_configs(mailbox_count, sink), domain_daily_cap=HUGE_CAP,
        recipient_domain_daily_cap=HUGE_CAP, recipient_domain_weekly_cap=HUGE_CAP,
    )


def write_sequence(root: Path, settings: Settings) -> None:
    (root / "sequences").mkdir(parents=True)
    (root / "steps").mkdir()
    addresses = ", ".join(m["address"] for m in settings.mailboxes)
    (root / "sequences" / "bench.yaml").write_text(SEQUENCE.format(mailboxes=addresses))
    (root / "steps" / "first.j2").write_text(FIRST)
    (root / "steps" / "bump.j2").write_text(BUMP)


def load_suppression(engine: Engine, count: int, now: datetime) -> None:
    """``count`` entries in one INSERT ... SELECT (no Python loop): 90 % addresses, 10 % domains.

    None of them matches a benchmark prospect, so every touch is checked and then sent.
    """
    columns = """
        CASE WHEN i % 10 = 0 THEN 'domain' ELSE 'email' END,
        CASE WHEN i % 10 = 0 THEN 'blocked' || i || '.example'
             ELSE 'person' || i || '@suppressed' || (i % 5000) || '.example' END,
        CASE i % 4 WHEN 0 THEN 'unsubscribed' WHEN 1 THEN 'hard_bounce' WHEN 2 THEN 'customer'
             ELSE 'manual' END,
        '', 'bench', :now, NULL"""
    target = "INSERT INTO suppressionentry (kind, value, reason, note, added_by, added_at, expires_at)"
    if engine.dialect.name == "sqlite":
        sql = (f"WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < :n) "
               f"{target} SELECT {columns} FROM seq")
    else:
        sql = f"{target} SELECT {columns} FROM generate_series(1, :n) AS seq(i)"
    with engine.begin() as conn:
        conn.execute(text(sql), {"n": count, "now": now.replace(tzinfo=None)})


def prepare(session: Session, settings: Settings, n: int) -> None:
    """Sequence, mailboxes, verified sending domains and N prospects, each on its own domain."""
    now = SystemClock().now()
    write_sequence(settings.templates_dir, settings)
    sync(session, now, settings.templates_dir)
    mailboxes.sync_from_settings(session, settings, now.date())
    for domain in sorted({m["address"].split("@")[1] for m in settings.mailboxes}):
        session.add(DomainCheck(domain=domain, status="pass", checked_at=now, report={},
                                expires_at=now + timedelta(days=3650), last_good_status="pass",
                                last_good_at=now))
    session.commit()
    for i in range(n):
        prospects.upsert_prospect(session, now, f"dana{i}@prospect{i}.example",
                                  {"first_name": f"Dana{i}", "company": f"Prospect {i}", "timezone": "UTC"})
        if i % 1000 == 999:
            session.commit()
    session.commit()


def reset(engine: Engine) -> None:
    """Forget what a variant did (signals, enrollments, touches, counters); keep the rest."""
    with engine.begin() as conn:
        for table in ("decision", "touch", "enrollment", "signal", "capcounter"):
            conn.execute(text(f"DELETE FROM {table}"))
        conn.execute(text("UPDATE mailbox SET last_sent_at = NULL"))
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def fire_signals(session: Session, n: int) -> float:
    """Store N intent signals the way intake does (validated, one commit each); signals/s."""
    clock = SystemClock()
    started = time.perf_counter()
    for i in range(n):
        signals.store(session, clock.now(), signals.SignalIn(
            type="intent_surge", email=f"dana{i}@prospect{i}.example", source="bench",
            payload={"topic": "sales engagement", "score": 80}))
    return n / (time.perf_counter() - started)


@contextlib.contextmanager
def caps_disabled() -> Iterator[None]:
    """No cap is counted or read, and mailboxes take turns: stands in for a switch the engine lacks.

    The turns keep the unguarded run on the same 50 mailboxes (and so the same parallel
    connections) as the guarded one, so the two differ by the guards and caps alone.
    """
    turns = itertools.count()

    def take_turns(session, now, settings, candidates, *args, **kwargs):
        boxes = getattr(candidates, "mailboxes", candidates)
        return mailboxes.Choice(boxes[next(turns) % len(boxes)], [], limits=[])  # counts against no cap

    with mock.patch.object(mailboxes, "choose", take_turns):
        yield


def variant(name: str, settings: Settings) -> tuple[Runtime, contextlib.AbstractContextManager]:
    """The runtime for a variant and the context it must run in."""
    sender = SmtpSender()
    if name == "guarded":
        return runtime.build(settings, sender=sender, check_domains=True), contextlib.nullcontext()
    unguarded = dataclasses.replace(runtime.build(settings, sender=sender, check_domains=False), guards=())
    return unguarded, caps_disabled()


def drive(session: Session, engine_runtime: Runtime, n: int, limit: int, run: Run) -> None:
    """Tick until N first touches are sent, as the embedded loop would (minus its sleep)."""
    clock = SystemClock()
    started = time.perf_counter()
    while run.outcomes["sent"] < n:
        report = tick(session, clock, engine_runtime, limit=limit)
        run.ticks += 1
        run.outcomes.update(report.outcomes)
        if not report.signals and not report.advanced:
            raise RuntimeError(f"{run.name}: stalled after {run.outcomes['sent']} of {n} touches; "
                               f"outcomes {dict(run.outcomes)}")
    run.seconds = time.perf_counter() - started
    run.touches = run.outcomes["sent"]


def collect(session: Session, run: Run) -> None:
    """Signal-to-touch latencies and per-mailbox counts, read back from the database."""
    rows = session.exec(
        select(Touch.sent_at, Signal.received_at)
        .join(Enrollment, Enrollment.id == Touch.enrollment_id)
        .join(Signal, Signal.id == Enrollment.signal_id)
        .where(Touch.state == "sent", Touch.step_index == 0)
    ).all()
    run.latencies = sorted((sent - received).total_seconds() for sent, received in rows)
    run.per_mailbox = sorted(session.exec(
        select(func.count(Touch.id)).where(Touch.state == "sent").group_by(Touch.mailbox_id)).all())


def run_variant(name: str, engine: Engine, settings: Settings, sink: SmtpSink, args: argparse.Namespace) -> Run:
    reset(engine)
    run = Run(name)
    engine_runtime, context = variant(name, settings)
    received_before = sink.received()
    with db.session(engine) as session:
        run.signals_per_s = fire_signals(session, args.n)
        with context:
            try:
                drive(session, engine_runtime, args.n, args.limit, run)
            finally:
                engine_runtime.sender.close()
        collect(session, run)
    time.sleep(0.2)  # smtp-sink prints its counters when a session ends
    run.sink_received = sink.received() - received_before
    return run


def sample_message(settings: Settings) -> bytes:
    """A message the size of the benchmark's first touches, built by the same code."""
    mailbox = Mailbox(id=1, address="sdr000@outreach0.example", display_name="SDR 0",
                      sending_domain="outreach0.example")
    to = "dana1234@prospect1234.example"
    body = (FIRST.replace("{{ prospect.first_name }}", "Dana1234").replace("{{ account.name }}", "Prospect 1234")
            .replace("{{ signal.topic }}", "sales engagement").replace("{{ sender.name }}", "SDR 0").strip())
    footer = f"\n\n--\nNot the right time? Unsubscribe with one click: {unsubscribe_url(settings, to)}"
    email = OutgoingEmail(mailbox=mailbox, to=to, subject="Prospect 1234: an idea after your sales engagement "
                          "research", text=body + footer, message_id=new_message_id(mailbox.sending_domain),
                          headers=unsubscribe_headers(settings, to), date=datetime.now(UTC),
                          envelope_from="sdr000+t1234@outreach0.example")
    return build(email).as_bytes()


def smtplib_baseline(sink: SmtpSink, message: bytes, n: int) -> float:
    """Plain smtplib over one connection, single-threaded: the most the sink path allows."""
    connection = smtplib.SMTP(sink.host, sink.port, timeout=30)
    try:
        started = time.perf_counter()
        for i in range(n):
            connection.sendmail("sdr000+t1@outreach0.example", [f"dana{i}@prospect{i}.example"], message)
        return n / (time.perf_counter() - started)
    finally:
        connection.quit()


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    return values[min(len(values) - 1, max(0, round(share * len(values)) - 1))] if values else float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def timed(label: str, action: Callable[[], object]) -> None:
    started = time.perf_counter()
    action()
    print(f"  {label:<44} {time.perf_counter() - started:8.1f} s   (peak RSS {peak_rss_mb():.0f} MB)")


def median_run(runs: list[Run]) -> Run:
    """The median round by rate; of an even number, the lower middle one (never flattering)."""
    return sorted(runs, key=lambda run: run.rate)[(len(runs) - 1) // 2]


def report(args: argparse.Namespace, dialect: str, message: bytes, baselines: list[float],
           runs: dict[str, list[Run]]) -> None:
    baseline = statistics.mean(baselines)
    guarded, unguarded = median_run(runs["guarded"]), median_run(runs["unguarded"])
    print(f"\n== results: N={args.n:,}, suppression={args.suppression:,}, mailboxes={args.mailboxes}, "
          f"{dialect}, tick limit={args.limit}, repeat={args.repeat} ==")
    print(f"baseline smtplib -> smtp-sink ({len(message):,} B messages, 1 connection): "
          + ", ".join(f"{b:,.0f}" for b in baselines) + f" sends/s (mean {baseline:,.0f})")
    for run in (guarded, unguarded):
        all_rates = ", ".join(f"{r.rate:,.0f}" for r in runs[run.name])
        print(f"\n[{run.name}] {run.touches:,} first touches in {run.seconds:.1f} s over {run.ticks} ticks")
        print(f"  email touches/s           {run.rate:8,.0f}   (runs: {all_rates})")
        print(f"  ratio to baseline         {run.rate / baseline:8.3f}")
        print(f"  signals stored/s (intake) {run.signals_per_s:8,.0f}")
        print(f"  signal->touch latency     p50 {percentile(run.latencies, .5):.2f} s, "
              f"p90 {percentile(run.latencies, .9):.2f} s, p99 {percentile(run.latencies, .99):.2f} s "
              "(all N signals arrive at once, so this is the time to drain the burst)")
        print(f"  per mailbox               min {run.per_mailbox[0]}, max {run.per_mailbox[-1]} "
              f"over {len(run.per_mailbox)} mailboxes")
        print(f"  smtp-sink received        {run.sink_received:,}"
              + ("" if run.sink_received == run.touches else "   << MISMATCH"))
        other = {k: v for k, v in run.outcomes.items() if k != "sent"}
        if other:
            print(f"  other outcomes            {other}   << expected none")
    overhead = 1 - guarded.rate / unguarded.rate
    verdict = "within" if overhead <= TARGET_GUARD_OVERHEAD else "OVER"
    print(f"\nguarded / unguarded        {guarded.rate / unguarded.rate:.3f}  (guard cost {overhead:.1%}; "
          f"{verdict} the {TARGET_GUARD_OVERHEAD:.0%} budget)")
    met = "met" if guarded.rate >= TARGET_TOUCHES_PER_S else "NOT met"
    print(f"target {TARGET_TOUCHES_PER_S} guarded touches/s: {met} ({guarded.rate:,.0f}/s); the sink path "
          f"allows {baseline:,.0f}/s here, so the target is {TARGET_TOUCHES_PER_S / baseline:.3f} of baseline")
    print(f"peak RSS (whole run)       {peak_rss_mb():,.0f} MB")
    print("notes: caps are counted on every guarded send but set to 1e9 (mailbox daily, sending-domain "
          "daily, recipient-domain daily/weekly; each prospect has its own recipient domain) so none "
          "defers. Sending domains pre-verified with DomainCheck rows (status pass, expiring in 10 "
          "years): no DNS was queried. Unguarded = guards=[], no domain check, caps patched out, "
          "mailboxes taking turns.")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="sequencer-bench-"))
    try:
        with SmtpSink() as sink, throwaway_database(args.database, folder) as url:
            engine = db.make_engine(url)
            settings = bench_settings(url, folder / "templates", sink, args.mailboxes)
            print(f"== setup ({engine.dialect.name}, smtp-sink on {sink.host}:{sink.port}) ==")
            timed("migrate", lambda: db.migrate(engine))
            timed(f"load {args.suppression:,} suppression entries",
                  lambda: load_suppression(engine, args.suppression, SystemClock().now()))
            with db.session(engine) as session:
                timed(f"sequence, {args.mailboxes} mailboxes, {args.n:,} prospects",
                      lambda: prepare(session, settings, args.n))
            message = sample_message(settings)
            baselines = [smtplib_baseline(sink, message, args.n)]
            runs: dict[str, list[Run]] = {"guarded": [], "unguarded": []}
            for round_no in range(args.repeat):
                order = ("guarded", "unguarded") if round_no % 2 == 0 else ("unguarded", "guarded")
                for name in order:
                    run = run_variant(name, engine, settings, sink, args)
                    runs[name].append(run)
                    print(f"  {name:<10} round {round_no + 1}: {run.rate:,.0f} touches/s "
                          f"(peak RSS {peak_rss_mb():.0f} MB)")
            baselines.append(smtplib_baseline(sink, message, args.n))
            report(args, engine.dialect.name, message, baselines, runs)
            engine.dispose()
    except SinkMissing as exc:
        sys.exit(f"error: {exc}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
