"""#13: deliverability monitoring, DMARC aggregate reports, mailbox protection, report indexes

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 13:50:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel
import sequencer.core.models


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
