"""Review indexes carry the user id

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 07:30:00

The review table orders by name or email, then id. With the id in the index, the ids of any
page, however deep, come from an index-only scan; the page's rows are then read by id.
"""
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


# Plain index operations (no batch mode): the users table is never copied, so the triggers of
# 0008 on it stay in place.
def upgrade():
    op.drop_index('ix_users_practice_id_display_name', table_name='users')
    op.drop_index('ix_users_practice_id_email', table_name='users')
    op.create_index('ix_users_practice_id_display_name', 'users', ['practice_id', 'display_name', 'id'], unique=False)
    op.create_index('ix_users_practice_id_email', 'users', ['practice_id', 'email', 'id'], unique=False)


def downgrade():
    op.drop_index('ix_users_practice_id_email', table_name='users')
    op.drop_index('ix_users_practice_id_display_name', table_name='users')
    op.create_index('ix_users_practice_id_email', 'users', ['practice_id', 'email'], unique=False)
    op.create_index('ix_users_practice_id_display_name', 'users', ['practice_id', 'display_name'], unique=False)
