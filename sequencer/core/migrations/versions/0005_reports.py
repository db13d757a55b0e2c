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
    with op.batch_alter_table('mailbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('paused_at', sequencer.core.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('paused_by', sqlmodel.sql.sqltypes.AutoString(), nullable=False,
                                      server_default=''))
        batch_op.add_column(sa.Column('resumed_at', sequencer.core.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('resumed_by', sqlmodel.sql.sqltypes.AutoString(), nullable=False,
                                      server_default=''))
    with op.batch_alter_table('enrollment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enrollment_signal_id'), ['signal_id'], unique=False)
    with op.batch_alter_table('touch', schema=None) as batch_op:
        batch_op.create_index('ix_touch_sent_mailbox', ['sent_at', 'mailbox_id'], unique=False)
    with op.batch_alter_table('inboundmessage', schema=None) as batch_op:
        batch_op.create_index('ix_inboundmessage_kind_received', ['kind', 'received_at'], unique=False)

    op.create_table('domaincheckrecord',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('domain', sqlmodel.sql.sqltypes.AutoString(length=253), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('checked_at', sequencer.core.models.UTCDateTime(), nullable=True),
    sa.Column('report', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('domaincheckrecord', schema=None) as batch_op:
        batch_op.create_index('ix_domaincheckrecord_domain_at', ['domain', 'checked_at'], unique=False)

    op.create_table('sendingdomainpause',
    sa.Column('domain', sqlmodel.sql.sqltypes.AutoString(length=253), nullable=False),
    sa.Column('paused', sa.Boolean(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('paused_at', sequencer.core.models.UTCDateTime(), nullable=True),
    sa.Column('paused_by', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('resumed_at', sequencer.core.models.UTCDateTime(), nullable=True),
    sa.Column('resumed_by', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.PrimaryKeyConstraint('domain')
    )

    op.create_table('dmarcreport',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('report_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('reporter_email', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('domain', sqlmodel.sql.sqltypes.AutoString(length=253), nullable=False),
    sa.Column('policy', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('begin_at', sequencer.core.models.UTCDateTime(), nullable=True),
    sa.Column('end_at', sequencer.core.models.UTCDateTime(), nullable=True),
    sa.Column('received_at', sequencer.core.models.UTCDateTime(), nullable=True),
    sa.Column('inbound_message_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['inbound_message_id'], ['inboundmessage.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('org_name', 'report_id')
    )
    with op.batch_alter_table('dmarcreport', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dmarcreport_begin_at'), ['begin_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_dmarcreport_domain'), ['domain'], unique=False)

    op.create_table('dmarcrecord',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dmarc_report_id', sa.Integer(), nullable=False),
    sa.Column('source_ip', sqlmodel.sql.sqltypes.AutoString(length=45), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('header_from', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('disposition', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('dkim', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('spf', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('dkim_result', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('spf_result', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.ForeignKeyConstraint(['dmarc_report_id'], ['dmarcreport.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('dmarcrecord', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dmarcrecord_dmarc_report_id'), ['dmarc_report_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('dmarcrecord', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dmarcrecord_dmarc_report_id'))
    op.drop_table('dmarcrecord')
    with op.batch_alter_table('dmarcreport', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dmarcreport_domain'))
        batch_op.drop_index(batch_op.f('ix_dmarcreport_begin_at'))
    op.drop_table('dmarcreport')
    op.drop_table('sendingdomainpause')
    with op.batch_alter_table('domaincheckrecord', schema=None) as batch_op:
        batch_op.drop_index('ix_domaincheckrecord_domain_at')
    op.drop_table('domaincheckrecord')
    with op.batch_alter_table('inboundmessage', schema=None) as batch_op:
        batch_op.drop_index('ix_inboundmessage_kind_received')
    with op.batch_alter_table('touch', schema=None) as batch_op:
        batch_op.drop_index('ix_touch_sent_mailbox')
    with op.batch_alter_table('enrollment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enrollment_signal_id'))
    with op.batch_alter_table('mailbox', schema=None) as batch_op:
        batch_op.drop_column('resumed_by')
        batch_op.drop_column('resumed_at')
        batch_op.drop_column('paused_by')
        batch_op.drop_column('paused_at')
