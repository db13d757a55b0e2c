"""Classifying speed over the inbound corpus: ms per message, against plain stdlib parsing of the same bytes.

    .venv/bin/python bench/bench_classify.py [--rounds 5]

The baseline (``email.message_from_bytes`` plus walking the parts) runs in the same process on the
same messages, so the ratio says what classifying costs over reading the mail at all.
"""

from __future__ import annotations

import argparse
import email
import statistics
import time
from pathlib import Path

from sequencer.inbound import classify

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "inbound"


def _timed(messages: list[bytes], work) -> float:
    start = time.perf_counter()
    for raw in messages:
        work(raw)
    return (time.perf_counter() - start) * 1000 / len(messages)


def _parse_only(raw: bytes) -> None:
    for part in email.message_from_bytes(raw).walk():
        part.get_payload(decode=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    messages = [p.read_bytes() for p in sorted(FIXTURES.rglob("*.eml"))]
    baseline, classifying = [], []
    for _ in range(args.rounds):
        baseline.append(_timed(messages, _parse_only))
        classifying.append(_timed(messages, classify))
    base, cls = statistics.median(baseline), statistics.median(classifying)
    print(f"{len(messages)} messages, median of {args.rounds} rounds: classify {cls:.3f} ms/message, "
          f"plain parsing {base:.3f} ms/message, ratio {cls / base:.1f}x")


if __name__ == "__main__":
    main()
