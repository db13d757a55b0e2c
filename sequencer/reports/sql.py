"""The few pieces of the report queries that SQLite and PostgreSQL spell differently.

Times are stored as UTC (``UTCDateTime``): on SQLite as ISO text, on PostgreSQL as a
timestamp without zone. The UTC day is ``sequencer.deliverability.counts.utc_day``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, case, cast, func, literal
from sqlalchemy.sql import ColumnElement
from sqlmodel import Session


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def seconds_between(session: Session, start: Any, end: Any) -> ColumnElement:
    """``end - start`` in seconds, as a float."""
    if is_postgres(session):
        return cast(func.extract("epoch", end - start), Float)
    return (func.julianday(end) - func.julianday(start)) * literal(86400.0)


def nearest_rank(rank: Any, count: Any, share: float, value: Any) -> ColumnElement:
    """For ``min(...)`` over ranked rows: the nearest-rank percentile (the first value whose rank
    reaches ``share`` of the count), so percentiles are computed in the database on both."""
    return func.min(case((rank >= count * literal(share), value), else_=None))
