"""Split distributed speed to lead into stages, with the CPU each process used (#14).

The same deployment as ``bench_speed_to_lead.py`` (its helpers: ``sequencer serve``, a Celery
worker with 2 pool processes on Redis and a fresh PostgreSQL database, the aiosmtpd sink in
this process), one open-loop run, then per signal: due -> POST answered, due -> stored
(``signal.received_at``), stored -> processed (``processed_at``, the ingest pass's claim),
processed -> ``touch.sent_at``, sent -> accepted by the sink. CPU is read from
``/proc/<pid>/stat`` once a second for the API, the worker (main and pool processes), the
PostgreSQL backends of the bench database, Redis, this process, and the whole machine.

    .venv/bin/python bench/stages_speed_to_lead.py --rate 100 --seconds 60
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psycopg
import redis

sys.path.insert(0, str(Path(__file__).parent))
import bench_speed_to_lead as stl  # the bench's own folder is not a package

TICKS = os.sysconf("SC_CLK_TCK")
STAGES = """select s.email, extract(epoch from s.received_at), extract(epoch from s.processed_at),
    extract(epoch from t.sent_at) from signal s left join touch t on t.prospect_id = s.prospect_id
    where s.email like 'lead%'"""


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # the process ended
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def with_children(pid: int) -> list[int]:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):  # the task ended
            found += [p for child in (task / "children").read_text().split() for p in with_children(int(child))]
    return found


def matching(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_text():
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def machine_busy() -> float:
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / TICKS


def show(name: str, values: list[float]) -> None:
    if values:
        ordered = sorted(values)
        print(
            f"  {name:26s} n={len(ordered)}  p50 {statistics.median(ordered):8.3f} s  "
            f"p99 {ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]:8.3f} s  max {ordered[-1]:8.3f} s"
        )


def run(rate: float, seconds: float, args: argparse.Namespace) -> None:
    redis.Redis.from_url(args.redis).flushdb()
    wall = time.time() - time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="bench-stl-") as tmp,
        stl.fresh_postgres(args.database) as url,
        stl.LocalSmtpServer(handler=stl.Arrivals()) as sink,
    ):
        root, port = Path(tmp), stl.free_port()
        env = stl.write_workspace(root, url, args.redis, sink, "celery")
        key = stl.prepare_database(url)
        worker = [
            str(stl.BIN / "celery"),
            "-A",
            "sequencer.app.celery_app",
            "worker",
            f"--concurrency={args.workers}",
            "--without-mingle",
            "--without-gossip",
            "--loglevel=info",
            "-n",
            "bench@%h",
        ]
        serve = [str(stl.BIN / "sequencer"), "serve", "--port", str(port)]
        with (
            stl.processes((worker, " ready."), (serve, "Uvicorn running"), env=env, root=root),
            httpx.Client(limits=httpx.Limits(max_connections=64), timeout=30) as client,
        ):
            base = f"http://127.0.0.1:{port}"
            stl.post(client, base, key, "warm-up@warm.example", {})
            time.sleep(3)
            groups = {
                name: sorted({p for pid in matching(text) for p in with_children(pid)})
                for name, text in (("worker", "bench@%h"), ("API", f"--port\x00{port}"), ("redis", "redis-server"))
            }
            database = url.rsplit("/", 1)[1]

            def sample() -> dict[str, float]:
                row = {name: sum(map(cpu_seconds, pids)) for name, pids in groups.items()}
                row["postgres"] = sum(map(cpu_seconds, matching(database)))
                row["bench"], row["machine"], row["t"] = cpu_seconds(os.getpid()), machine_busy(), time.monotonic()
                return row

            samples, stop = [sample()], threading.Event()

            def sampler() -> None:
                while not stop.wait(1):
                    samples.append(sample())

            thread = threading.Thread(target=sampler)
            thread.start()
            due: dict[str, float] = {}
            answered: dict[str, float] = {}

            def send(i: int) -> None:
                stl.post(client, base, key, f"lead{i}@c{i}.example", due)
                answered[f"lead{i}@c{i}.example"] = time.monotonic()

            stl.open_loop(rate, seconds, send)
            found, missing = stl.latencies(sink.handler, due, wait=120)
            stop.set()
            thread.join()
            stl.report(f"distributed, {rate:g} signals/s for {seconds:g} s", found, missing, "0.5 s", "2 s")
            with psycopg.connect(url) as conn:
                rows = conn.execute(STAGES).fetchall()
    arrived = sink.handler.at
    stages: dict[str, list[float]] = {
        name: []
        for name in (
            "due -> POST answered",
            "due -> stored",
            "stored -> processed",
            "processed -> sent_at",
            "sent_at -> sink",
            "due -> sink",
        )
    }
    for email, received, processed, sent in rows:
        if email not in due or None in (received, processed, sent) or email not in arrived:
            continue
        start, received, processed, sent = due[email] + wall, float(received), float(processed), float(sent)
        for name, value in zip(
            stages,
            (
                answered[email] + wall - start,
                received - start,
                processed - received,
                sent - processed,
                arrived[email] + wall - sent,
                arrived[email] + wall - start,
            ),
            strict=True,
        ):
            stages[name].append(value)
    for name, values in stages.items():
        show(name, values)
    span = samples[-1]["t"] - samples[0]["t"]
    print(
        f"  CPU (cores) over {span:.0f} s: "
        + ", ".join(f"{name} {(samples[-1][name] - samples[0][name]) / span:.2f}" for name in samples[0] if name != "t")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    options = parser.parse_args()
    run(options.rate, options.seconds, stl.parse_args([]))


if __name__ == "__main__":
    main()
