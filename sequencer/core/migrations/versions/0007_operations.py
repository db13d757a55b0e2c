"""#14: distributed operations: mailbox relay failures (the batch back-off), IMAP settings, enrollment taken_until

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 13:50:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel
import sequencer.core.models


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_COLUMNS = [
    ('relay_failures', sa.Integer(), '0'),
    ('relay_error', sqlmodel.sql.sqltypes.AutoString(), "''"),
    ('imap_host', sqlmodel.sql.sqltypes.AutoString(), "''"),
    ('imap_port', sa.Integer(), '0'),
    ('imap_ssl', sa.Boolean(), sa.true()),
    ('imap_username', sqlmodel.sql.sqltypes.AutoString(), "''"),
    ('imap_password_env', sqlmodel.sql.sqltypes.AutoString(), "''"),
]


def upgrade() -> None:
    with op.batch_alter_table('mailbox', schema=None) as batch_op:
        for name, type_, default in _COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=False, server_default=default))
    # The server defaults only fill the existing rows; the models give every new row its values.
    with op.batch_alter_table('mailbox', schema=None) as batch_op:
        for name, type_, _ in _COLUMNS:
            batch_op.alter_column(name, existing_type=type_, server_default=None)
    with op.batch_alter_table('enrollment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('taken_until', sequencer.core.models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('enrollment', schema=None) as batch_op:
        batch_op.drop_column('taken_until')
    with op.batch_alter_table('mailbox', schema=None) as batch_op:
        for name, _, _ in reversed(_COLUMNS):
            batch_op.drop_column(name)
