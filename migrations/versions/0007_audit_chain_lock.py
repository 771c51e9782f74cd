"""Audit chain lock row

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 04:42:24.525427

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('audit_chain_lock',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('writes', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_chain_lock'))
    )
    # The one row every audit writer locks before linking its event to the chain.
    op.execute("INSERT INTO audit_chain_lock (id, writes) VALUES (1, 0)")


def downgrade():
    op.drop_table('audit_chain_lock')
