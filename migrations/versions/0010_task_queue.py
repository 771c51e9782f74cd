"""Task queue bookkeeping: sent notices, deferred tasks, failed tasks

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 06:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'sent_notices',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('sent_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sent_notices')),
        sa.UniqueConstraint('key', name=op.f('uq_sent_notices_key')),
    )
    op.create_index(op.f('ix_sent_notices_sent_at'), 'sent_notices', ['sent_at'], unique=False)
    op.create_table(
        'deferred_tasks',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('arguments', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_deferred_tasks')),
    )
    op.create_index(op.f('ix_deferred_tasks_created_at'), 'deferred_tasks', ['created_at'], unique=False)
    op.create_table(
        'failed_tasks',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('arguments', sa.Text(), nullable=False),
        sa.Column('error', sa.String(length=200), nullable=False),
        sa.Column('failed_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_failed_tasks')),
    )
    op.create_index(op.f('ix_failed_tasks_failed_at'), 'failed_tasks', ['failed_at'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_failed_tasks_failed_at'), table_name='failed_tasks')
    op.drop_table('failed_tasks')
    op.drop_index(op.f('ix_deferred_tasks_created_at'), table_name='deferred_tasks')
    op.drop_table('deferred_tasks')
    op.drop_index(op.f('ix_sent_notices_sent_at'), table_name='sent_notices')
    op.drop_table('sent_notices')
