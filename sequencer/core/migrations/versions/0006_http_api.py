"""#14: HTTP API and act-at-once intake

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 13:50:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel
import sequencer.core.models


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The unprocessed signals, for the embedded loop's probe between ticks (signals.any_unprocessed).
    with op.batch_alter_table('signal', schema=None) as batch_op:
        batch_op.create_index('ix_signal_unprocessed', ['id'], unique=False,
                              sqlite_where=sa.text('processed_at IS NULL'),
                              postgresql_where=sa.text('processed_at IS NULL'))


def downgrade() -> None:
    with op.batch_alter_table('signal', schema=None) as batch_op:
        batch_op.drop_index('ix_signal_unprocessed', sqlite_where=sa.text('processed_at IS NULL'),
                            postgresql_where=sa.text('processed_at IS NULL'))
