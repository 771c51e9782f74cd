"""One open requirement request per practice

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 04:39:24.405530

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('requirement_requests', schema=None) as batch_op:
        batch_op.create_index('uq_requirement_requests_one_open', ['practice_id'], unique=True,
                              postgresql_where=sa.text("status = 'pending'"),
                              sqlite_where=sa.text("status = 'pending'"))



def downgrade():
    with op.batch_alter_table('requirement_requests', schema=None) as batch_op:
        batch_op.drop_index('uq_requirement_requests_one_open', postgresql_where=sa.text("status = 'pending'"),
                            sqlite_where=sa.text("status = 'pending'"))

