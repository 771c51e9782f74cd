"""Lost-access requests: a user who cannot use their MFA method asks support to clear it

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 07:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'lost_access_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('decided_by_id', sa.Integer(), nullable=True),
        sa.Column('decided_at', sa.DateTime(), nullable=True),
        sa.Column('decision_note', sa.Text(), nullable=True),
        sa.CheckConstraint("status IN ('open', 'cleared', 'declined')",
                           name=op.f('ck_lost_access_requests_status_allowed')),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_lost_access_requests_user_id_users'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['decided_by_id'], ['users.id'],
                                name=op.f('fk_lost_access_requests_decided_by_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_lost_access_requests')),
    )
    op.create_index('ix_lost_access_requests_status_id', 'lost_access_requests', ['status', 'id'], unique=False)
    # At most one open request per user, even when two arrive at the same moment.
    op.create_index('uq_lost_access_requests_one_open', 'lost_access_requests', ['user_id'], unique=True,
                    postgresql_where=sa.text("status = 'open'"), sqlite_where=sa.text("status = 'open'"))


def downgrade():
    op.drop_index('uq_lost_access_requests_one_open', table_name='lost_access_requests')
    op.drop_index('ix_lost_access_requests_status_id', table_name='lost_access_requests')
    op.drop_table('lost_access_requests')
