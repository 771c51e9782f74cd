"""Indexes for the practice review

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 04:28:01.416509

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_index('ix_users_practice_id_display_name', ['practice_id', 'display_name'], unique=False)
        batch_op.create_index('ix_users_practice_id_email', ['practice_id', 'email'], unique=False)



def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index('ix_users_practice_id_email')
        batch_op.drop_index('ix_users_practice_id_display_name')

