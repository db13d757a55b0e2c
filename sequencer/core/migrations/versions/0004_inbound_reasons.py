"""#11: bounce reasons from the fixed taxonomy: inboundmessage.bounce_reason / status_code / diagnostic,
and the bounce table (one row per refusal of a touch, at send time or by DSN)

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
    with op.batch_alter_table('inboundmessage', schema=None) as batch_op:
        # server_default: rows stored before this migration get an empty reason, as new ones without a bounce do
        batch_op.add_column(sa.Column('bounce_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=False,
                                      server_default=''))
        batch_op.add_column(sa.Column('status_code', sqlmodel.sql.sqltypes.AutoString(), nullable=False,
                                      server_default=''))
        batch_op.add_column(sa.Column('diagnostic', sqlmodel.sql.sqltypes.AutoString(), nullable=False,
                                      server_default=''))
        batch_op.create_index(batch_op.f('ix_inboundmessage_bounce_reason'), ['bounce_reason'], unique=False)

    op.create_table('bounce',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sequencer.core.models.UTCDateTime(), nullable=True),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('touch_id', sa.Integer(), nullable=True),
    sa.Column('mailbox_id', sa.Integer(), nullable=True),
    sa.Column('recipient', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('bounce_type', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('bounce_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('status_code', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('diagnostic', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('about_our_message', sa.Boolean(), nullable=False),
    sa.Column('inbound_message_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['inbound_message_id'], ['inboundmessage.id'], ),
    sa.ForeignKeyConstraint(['mailbox_id'], ['mailbox.id'], ),
    sa.ForeignKeyConstraint(['touch_id'], ['touch.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('bounce', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bounce_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_bounce_bounce_reason'), ['bounce_reason'], unique=False)
        batch_op.create_index(batch_op.f('ix_bounce_bounce_type'), ['bounce_type'], unique=False)
        batch_op.create_index(batch_op.f('ix_bounce_mailbox_id'), ['mailbox_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_bounce_touch_id'), ['touch_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('bounce', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bounce_touch_id'))
        batch_op.drop_index(batch_op.f('ix_bounce_mailbox_id'))
        batch_op.drop_index(batch_op.f('ix_bounce_bounce_type'))
        batch_op.drop_index(batch_op.f('ix_bounce_bounce_reason'))
        batch_op.drop_index(batch_op.f('ix_bounce_at'))
    op.drop_table('bounce')

    with op.batch_alter_table('inboundmessage', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inboundmessage_bounce_reason'))
        batch_op.drop_column('diagnostic')
        batch_op.drop_column('status_code')
        batch_op.drop_column('bounce_reason')
