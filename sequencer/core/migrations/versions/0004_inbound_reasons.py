"""#11: bounce reasons from the fixed taxonomy (reserved for the inbound-accuracy work)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 13:50:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel
import sequencer.core.models


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
