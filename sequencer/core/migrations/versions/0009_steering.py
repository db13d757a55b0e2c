"""#15: launch and steer

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 13:50:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel
import sequencer.core.models


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A reply to answer is a task with no step of its own (touch_id NULL); unique still holds for the rest.
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.alter_column('touch_id', existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM task WHERE touch_id IS NULL")
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.alter_column('touch_id', existing_type=sa.Integer(), nullable=False)
