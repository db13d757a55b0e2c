"""Alembic environment: runs on the connection handed in by ``sequencer.core.db.migrate``."""

from alembic import context
from sqlalchemy import create_engine
from sqlmodel import SQLModel

# Every module that defines tables, so all of them are on SQLModel.metadata: the engine's,
# the suppression list (owned by suppression) and the task queue (owned by channels).
import channels.tasks  # noqa: F401
import sequencer.core.models  # noqa: F401
import suppression.models  # noqa: F401

target_metadata = SQLModel.metadata
connection = context.config.attributes.get("connection")


def _run(conn) -> None:
    context.configure(
        connection=conn,
        target_metadata=target_metadata,
        render_as_batch=conn.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is None:
    with create_engine(context.config.get_main_option("sqlalchemy.url")).connect() as conn:
        _run(conn)
        conn.commit()
else:
    _run(connection)
