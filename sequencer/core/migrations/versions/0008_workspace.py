"""#15: an SDR's workspace and CRM import

Prospects get ``region`` (state or province, for the time zone) and ``timezone_source``
(given | inferred | none); accounts may be keyed by company name (``name_key``) with no
domain, for people who write from free-mail addresses.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 13:50:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel
import sequencer.core.models


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('prospect', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timezone_source', sqlmodel.sql.sqltypes.AutoString(), server_default='given',
                                      nullable=False))
        batch_op.add_column(sa.Column('region', sqlmodel.sql.sqltypes.AutoString(), server_default='',
                                      nullable=False))
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name_key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))
        batch_op.alter_column('domain', existing_type=sqlmodel.sql.sqltypes.AutoString(length=253), nullable=True)
        batch_op.create_index(batch_op.f('ix_account_name_key'), ['name_key'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_name_key'))
        batch_op.alter_column('domain', existing_type=sqlmodel.sql.sqltypes.AutoString(length=253), nullable=False)
        batch_op.drop_column('name_key')
    with op.batch_alter_table('prospect', schema=None) as batch_op:
        batch_op.drop_column('region')
        batch_op.drop_column('timezone_source')
