"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

# Every module that defines tables, as the migration environment imports them.
import channels.tasks  # noqa: F401
import sequencer.core.models  # noqa: F401
import suppression.models  # noqa: F401
from sequencer.core.db import make_engine, migrate


def schema_differences(engine: Engine) -> list:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, SQLModel.metadata)


def schema_snapshot(engine: Engine) -> dict:
    inspector = inspect(engine)
    return {
        table: (
            [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
            sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table)),
        )
        for table in sorted(inspector.get_table_names())
    }


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    migrate(engine)

    assert schema_differences(engine) == []


def test_the_comparison_sees_a_drifted_schema(sqlite_url: str) -> None:
    """A private SQLite file, so the shared PostgreSQL database is never altered."""
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_signal_type"))

    differences = schema_differences(engine)
    engine.dispose()

    assert [(d[0], d[1].name) for d in differences] == [("add_index", "ix_signal_type")]


def test_every_model_table_exists(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())

    assert set(SQLModel.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_migrating_twice_is_a_no_op(engine: Engine) -> None:
    migrate(engine)
    before = schema_snapshot(engine)
    with engine.connect() as conn:
        head = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()

    migrate(engine)

    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == head
    assert len(head) == 1
    assert schema_snapshot(engine) == before
