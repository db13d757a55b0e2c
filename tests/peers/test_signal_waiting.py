"""Two ingest workers take two batches of waiting signals, not the same one by turns (#14).

The ingest task takes the oldest waiting signals with its own. Under load the other
worker's batch is claimed but not committed, so its rows still look unprocessed: a
worker that picked them again found every one held (``claim`` skips them) and did
nothing, and the second pool process idled while the backlog grew. Real PostgreSQL, two
connections. Checked to fail before the fix (``skip_locked`` ignored).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sequencer.core.db import make_engine
from sequencer.core.db import session as new_session
from sequencer.intake import enrolling, signals

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_waiting_signals_skip_the_batch_another_worker_holds(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with new_session(engine) as setup:
            ids = [
                result.id
                for result in signals.store_many(
                    setup, NOW, [signals.SignalIn("form_fill", email=f"lead{n}@c{n}.example") for n in range(5)]
                )
            ]
            setup.commit()
        with new_session(engine) as first, new_session(engine) as second:
            assert enrolling.claim(first, NOW, ids[:3]) == set(ids[:3])  # in flight, not committed
            everything = [signal.id for signal in signals.unprocessed(second, 10)]
            second.rollback()
            free = [signal.id for signal in signals.unprocessed(second, 10, skip_locked=True)]
            assert everything == ids  # still unprocessed to a plain read
            assert free == ids[3:]
            # The second worker's rows are its own now: its claim takes them, the first's stay out.
            assert enrolling.claim(second, NOW, [*ids[:3], *free]) == set(ids[3:])
            first.commit()
            second.commit()
        with new_session(engine) as check:
            assert signals.unprocessed(check, 10) == []
    finally:
        engine.dispose()
