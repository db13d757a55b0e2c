"""The column types every table shares: UTC timestamps that come back aware.

They live here, in the package lowest in the dependency order, because the tables are
owned by three packages: ``sequencer.core.models`` (the engine's tables),
``suppression.models`` (the suppression list) and ``channels.tasks`` (the task queue).
``suppression`` and ``channels`` import nothing from ``sequencer``, so the one
implementation cannot live there; ``sequencer`` and ``channels`` import it from here.
Nothing in this module knows about suppression: it imports only SQLAlchemy and SQLModel.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field


class UTCDateTime(TypeDecorator):
    """Stores naive UTC, returns aware UTC, refuses naive input (a bug upstream)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given where UTC is required")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def utc_column(*, index: bool = False, nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), index=index, nullable=nullable))
