"""A start date for a practice's MFA requirement (a grace period), also in admins' requests

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 06:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


# Plain column additions (no batch mode): the practices table keeps the triggers of 0008.
def upgrade():
    op.add_column('practices', sa.Column('mfa_required_from', sa.DateTime(), nullable=True))
    op.add_column('requirement_requests', sa.Column('required_from', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('requirement_requests') as batch:
        batch.drop_column('required_from')
    op.drop_column('practices', 'mfa_required_from')
