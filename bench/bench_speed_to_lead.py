"""Benchmark speed to lead: a signal POSTed over HTTP -> its first email accepted by an SMTP server.

Everything runs as it is deployed, each part its own process: ``sequencer serve`` (the HTTP
API, an API key with the ``signals`` scope), and either Celery workers on Redis and a fresh
PostgreSQL database (distributed; no beat, so only the API's hand-off acts) or ``sequencer
run`` on a SQLite file (embedded; it wakes on a new signal). The SMTP server is an aiosmtpd
sink in this process that notes when each message's DATA is accepted; the latency of a
signal is that moment minus the moment its POST was due to start (open loop: a slow answer
delays nothing that follows, so queueing shows in the figures, not hidden by them).

Runs, with the targets of issue #14 beside the figures:

* distributed: ``--rate`` signals/s (100) for ``--seconds`` (60), one signal per POST,
  each about a new person: p50 / p99 of POST -> accepted (targets 0.5 s / 2 s);
* embedded: ``--lone`` single signals a second apart: p50 / p99 (same targets);
* the API alone: ``--api-rate`` POSTs/s (500) for ``--api-seconds`` (20): p50 / p99 of the
  HTTP answer (target p99 50 ms), with the workers running (the whole deployment on this host).

    .venv/bin/python bench/bench_speed_to_lead.py
    .venv/bin/python bench/bench_speed_to_lead.py --seconds 20 --lone 10 --api-seconds 10   # quicker
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import redis
from bench_send import fresh_postgres  # one throw-away database for every bench

from sequencer.core import api_keys, db
from sequencer.core.models import DomainCheck
from sequencer.loopback.smtp_server import Handler, LocalSmtpServer

BIN = Path(sys.executable).parent
MAILBOXES = [f"sdr{n}@outreach{n % 2}.example" for n in range(4)]
HUGE = 10_000_000
SEQUENCE = f"""\
name: speed
owner: sam.sdr@acme.example
trigger:
  signals: [form_fill]
window: {{days: mon-sun, start: "00:00", end: "23:59"}}
mailboxes: [{", ".join(MAILBOXES)}]
steps:
  - id: first
    kind: email
    subject: "Thanks, {{{{ prospect.first_name }}}}"
    template: first.j2
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--lone", type=int, default=20)
    parser.add_argument("--api-rate", type=float, default=500.0)
    parser.add_argument("--api-seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2, help="Celery pool processes (one worker host)")
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres")
    # Not 9-15: test runs claim those (tests/e2e/test_celery_worker.py), and their workers would take our tasks.
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/8")
    return parser.parse_args(argv)


class Arrivals(Handler):
    """The sink: accepts every message and notes when, by recipient."""

    def __init__(self) -> None:
        super().__init__()
        self.at: dict[str, float] = {}

    async def handle_DATA(self, server, session, envelope) -> str:
        now = time.monotonic()
        for rcpt in envelope.rcpt_tos:
            self.at.setdefault(rcpt.lower(), now)
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_workspace(root: Path, url: str, broker: str, sink: LocalSmtpServer, dispatch: str) -> dict[str, str]:
    (root / "templates" / "sequences").mkdir(parents=True)
    (root / "templates" / "steps").mkdir(parents=True)
    (root / "templates" / "sequences" / "speed.yaml").write_text(SEQUENCE)
    (root / "templates" / "steps" / "first.j2").write_text("Hi {{ prospect.first_name }}, thanks for asking.\n")
    boxes = "".join(f'\n[[mailboxes]]\naddress = "{address}"\nsmtp_host = "{sink.host}"\nsmtp_port = {sink.port}\n'
                    f"daily_cap = {HUGE}\n" for address in MAILBOXES)
    (root / "sequencer.toml").write_text(
        f'secret_key = "bench-secret-0123456789abcdef"\nprimary_domain = "acme.example"\n'
        f"domain_daily_cap = {HUGE}\nrecipient_domain_daily_cap = {HUGE}\nrecipient_domain_weekly_cap = {HUGE}\n"
        + boxes)
    return {**os.environ, "SEQUENCER_CONFIG": str(root / "sequencer.toml"), "SEQUENCER_DATABASE_URL": url,
            "SEQUENCER_BROKER_URL": broker, "SEQUENCER_TEMPLATES": str(root / "templates"),
            "SEQUENCER_SIGNAL_DISPATCH": dispatch}


def prepare_database(url: str) -> str:
    """Migrate, mark the sending domains verified (no DNS in a benchmark), make an API key."""
    engine = db.make_engine(url)
    db.migrate(engine)
    now = datetime.now(UTC)
    with db.session(engine) as session:
        for domain in sorted({address.split("@")[1] for address in MAILBOXES}):
            session.add(DomainCheck(domain=domain, status="pass", checked_at=now, report={},
                                    expires_at=now + timedelta(days=3650), last_good_status="pass",
                                    last_good_at=now))
        session.commit()
        key = api_keys.create(session, now, "bench", ["signals"]).key
    engine.dispose()
    return key


@contextlib.contextmanager
def processes(*commands: tuple[list[str], str], env: dict[str, str], root: Path) -> Iterator[None]:
    """Start each (argv, ready-text) and wait until its log shows the text; stop them all at the end."""
    started = []
    try:
        for argv, ready in commands:
            log = root / f"{Path(argv[0]).name}-{len(started)}.log"
            with log.open("wb") as out:
                started.append(subprocess.Popen(argv, env=env, cwd=root, stdout=out, stderr=subprocess.STDOUT,
                                                start_new_session=True))
            deadline = time.monotonic() + 60
            while ready not in log.read_text(errors="replace"):
                if started[-1].poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{argv[0]} did not start:\n{log.read_text(errors='replace')[-2000:]}")
                time.sleep(0.1)
        yield
    finally:
        for process in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 15)
        for process in started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)


def open_loop(rate: float, seconds: float, send: Callable[[int], None], threads: int = 64) -> list[float]:
    """Call ``send(i)`` at ``rate`` a second for ``seconds``; each call's seconds from when it was due to its end."""
    count = int(rate * seconds)
    start = time.monotonic() + 0.2
    results: list[float] = []
    lock = threading.Lock()

    def timed(due: float, i: int) -> None:
        send(i)
        with lock:
            results.append(time.monotonic() - due)

    with ThreadPoolExecutor(threads) as pool:
        for i in range(count):
            due = start + i / rate
            if (delay := due - time.monotonic()) > 0:
                time.sleep(delay)
            pool.submit(timed, due, i)
    return results


def quantiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def post(client: httpx.Client, base: str, key: str, email: str, due: dict[str, float]) -> None:
    due[email] = time.monotonic()
    response = client.post(f"{base}/signals", headers={"Authorization": f"Bearer {key}"},
                           json={"type": "form_fill", "email": email, "first_name": "Lee", "form": "demo"})
    if response.status_code != 202:
        raise SystemExit(f"POST /signals answered {response.status_code}: {response.text[:500]}")


def latencies(sink: Arrivals, due: dict[str, float], wait: float = 60.0) -> tuple[list[float], int]:
    """POST -> accepted for every signal; waits up to ``wait`` s for stragglers; (latencies, missing)."""
    deadline = time.monotonic() + wait
    while len(set(due) & set(sink.at)) < len(due) and time.monotonic() < deadline:
        time.sleep(0.2)
    found = [sink.at[email] - due[email] for email in due if email in sink.at]
    return found, len(due) - len(found)


def report(name: str, values: list[float], missing: int, p50_target: float, p99_target: float, unit: str = "s"):
    if not values:
        print(f"  {name}: nothing arrived ({missing} missing)")
        return
    p50, p99 = quantiles(values)
    scale = 1000 if unit == "ms" else 1
    print(f"  {name}: n={len(values)}  p50 {p50 * scale:7.3f} {unit} (target {p50_target})  "
          f"p99 {p99 * scale:7.3f} {unit} (target {p99_target})  max {max(values) * scale:7.3f} {unit}"
          + (f"  MISSING {missing}" if missing else ""))


def distributed(args: argparse.Namespace) -> None:
    redis.Redis.from_url(args.redis).flushdb()
    with tempfile.TemporaryDirectory(prefix="bench-stl-") as tmp, fresh_postgres(args.database) as url, \
            LocalSmtpServer(handler=Arrivals()) as sink:
        root, port = Path(tmp), free_port()
        env = write_workspace(root, url, args.redis, sink, "celery")
        key = prepare_database(url)
        worker = [str(BIN / "celery"), "-A", "sequencer.app.celery_app", "worker", f"--concurrency={args.workers}",
                  "--without-mingle", "--without-gossip", "--loglevel=info", "-n", "bench@%h"]
        serve = [str(BIN / "sequencer"), "serve", "--port", str(port)]
        with processes((worker, " ready."), (serve, "Uvicorn running"), env=env, root=root), \
                httpx.Client(limits=httpx.Limits(max_connections=64), timeout=30) as client:
            base = f"http://127.0.0.1:{port}"
            post(client, base, key, "warm-up@warm.example", {})  # each pool process opens its connections
            time.sleep(3)
            due: dict[str, float] = {}
            open_loop(args.rate, args.seconds, lambda i: post(client, base, key, f"lead{i}@c{i}.example", due))
            found, missing = latencies(sink.handler, due)
            report(f"distributed, {args.rate:g} signals/s for {args.seconds:g} s, {args.workers} pool processes",
                   found, missing, "0.5 s", "2 s")
            answer = open_loop(args.api_rate, args.api_seconds,
                               lambda i: post(client, base, key, f"api{i}@a{i}.example", {}))
            report(f"POST /signals alone, {args.api_rate:g}/s for {args.api_seconds:g} s (workers running)",
                   answer, 0, "-", "50 ms", unit="ms")


def embedded(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-stl-") as tmp, LocalSmtpServer(handler=Arrivals()) as sink:
        root, port = Path(tmp), free_port()
        url = f"sqlite:///{root / 'sequencer.db'}"
        env = write_workspace(root, url, "redis://127.0.0.1:1/0", sink, "none")
        key = prepare_database(url)
        run = [str(BIN / "sequencer"), "run", "--interval", "5"]
        serve = [str(BIN / "sequencer"), "serve", "--port", str(port)]
        with processes((serve, "Uvicorn running"), (run, ""), env=env, root=root), \
                httpx.Client(timeout=30) as client:
            base = f"http://127.0.0.1:{port}"
            time.sleep(3)  # the loop's first tick and housekeeping
            due: dict[str, float] = {}
            for i in range(args.lone):
                post(client, base, key, f"lone{i}@l{i}.example", due)
                time.sleep(1.0)
            found, missing = latencies(sink.handler, due)
            report(f"embedded (sequencer run, SQLite), {args.lone} lone signals a second apart", found, missing,
                   "0.5 s", "2 s")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(f"bench_speed_to_lead: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    embedded(args)
    distributed(args)


if __name__ == "__main__":
    main()
