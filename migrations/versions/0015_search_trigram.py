"""Support's user search stays fast at a million users: trigram indexes (PostgreSQL)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 16:00:00

Support finds users by any part of their name, email or practice name ("contains", case-
insensitive). A B-tree cannot serve a pattern with a leading wildcard; pg_trgm's GIN indexes
can, for ILIKE '%…%'. SQLite has no such index and needs none at the sizes it is used for.
These indexes are not in the models (they exist on PostgreSQL only): `skip_search_indexes` in
portal/models/base.py keeps autogenerate from proposing to drop them.
"""
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

INDEXES = (
    ('ix_users_email_trgm', 'users', 'email'),
    ('ix_users_display_name_trgm', 'users', 'display_name'),
    ('ix_practices_name_trgm', 'practices', 'name'),
)


def upgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    # pg_trgm is a trusted extension (PostgreSQL 13+): the database's owner may create it.
    op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
    for name, table, column in INDEXES:
        op.execute(f'CREATE INDEX {name} ON {table} USING gin ({column} gin_trgm_ops)')


def downgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    for name, _table, _column in INDEXES:
        op.execute(f'DROP INDEX IF EXISTS {name}')
