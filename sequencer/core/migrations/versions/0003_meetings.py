"""meetings: the meeting table (sequencer.meetings) and meetingnotice (each reminder or acceptance chase, once)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 11:58:34.310721
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel
import sequencer.core.models


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('meeting',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uid', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('prospect_id', sa.Integer(), nullable=False),
    sa.Column('enrollment_id', sa.Integer(), nullable=True),
    sa.Column('sdr', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('ae', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('location', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('start_at', sequencer.core.models.UTCDateTime(), nullable=True),
    sa.Column('duration_minutes', sa.Integer(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('ical_sequence', sa.Integer(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('external_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('previous_external_ids', sa.JSON(), nullable=False),
    sa.Column('attendees', sa.JSON(), nullable=False),
    sa.Column('held_minutes', sa.Integer(), nullable=True),
    sa.Column('held_at', sequencer.core.models.UTCDateTime(), nullable=True),
    sa.Column('no_show_fault', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('no_show_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('recorded_by', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('cancel_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('acceptance', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('rejection_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('rejection_note', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('decided_at', sequencer.core.models.UTCDateTime(), nullable=True),
    sa.Column('decided_by', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('review', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('start_set_at', sequencer.core.models.UTCDateTime(), nullable=True),
    sa.Column('created_at', sequencer.core.models.UTCDateTime(), nullable=True),
    sa.Column('updated_at', sequencer.core.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['enrollment_id'], ['enrollment.id'], ),
    sa.ForeignKeyConstraint(['prospect_id'], ['prospect.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source', 'external_id'),
    sa.UniqueConstraint('uid')
    )
    with op.batch_alter_table('meeting', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_meeting_ae'), ['ae'], unique=False)
        batch_op.create_index(batch_op.f('ix_meeting_enrollment_id'), ['enrollment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_meeting_prospect_id'), ['prospect_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_meeting_sdr'), ['sdr'], unique=False)
        batch_op.create_index(batch_op.f('ix_meeting_start_at'), ['start_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_meeting_state'), ['state'], unique=False)

    op.create_table('meetingnotice',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('meeting_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('at', sequencer.core.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['meeting_id'], ['meeting.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('meetingnotice', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_meetingnotice_meeting_id'), ['meeting_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('meetingnotice', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_meetingnotice_meeting_id'))

    op.drop_table('meetingnotice')
    with op.batch_alter_table('meeting', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_meeting_state'))
        batch_op.drop_index(batch_op.f('ix_meeting_start_at'))
        batch_op.drop_index(batch_op.f('ix_meeting_sdr'))
        batch_op.drop_index(batch_op.f('ix_meeting_prospect_id'))
        batch_op.drop_index(batch_op.f('ix_meeting_enrollment_id'))
        batch_op.drop_index(batch_op.f('ix_meeting_ae'))

    op.drop_table('meeting')
