"""An authenticator app's last accepted time step moves onto the user

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 10:30:00

A right authenticator code at Log In resets the user's failure count, records the last MFA login
and claims its time step (so the code cannot be replayed). With the step on mfa_enrollments
that took two conditional UPDATEs, of two tables; with it on users, one. So:

- users.totp_last_step, copied from each authenticator app's enrollment;
- mfa_enrollments.totp_last_step, which Symantec VIP Access enrollments also used for the time
  their last code was accepted, stays for them only, as vip_last_step (beside vip_last_code);
- mfa_enrollments.last_used_at goes: nothing read it, and users.last_mfa_at says the same.

SQLite (3.35 and later) renames and drops these columns in place; no trigger of 0008 or 0016
names them.
"""
import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('users', sa.Column('totp_last_step', sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE users SET totp_last_step = (SELECT e.totp_last_step FROM mfa_enrollments e"
        " WHERE e.user_id = users.id AND e.method = 'totp' AND e.vip_credential_id IS NULL)")
    op.execute(
        "UPDATE mfa_enrollments SET totp_last_step = NULL"
        " WHERE method = 'totp' AND vip_credential_id IS NULL")
    op.execute("ALTER TABLE mfa_enrollments RENAME COLUMN totp_last_step TO vip_last_step")
    op.drop_column('mfa_enrollments', 'last_used_at')


def downgrade():
    op.add_column('mfa_enrollments', sa.Column('last_used_at', sa.DateTime(), nullable=True))
    op.execute("ALTER TABLE mfa_enrollments RENAME COLUMN vip_last_step TO totp_last_step")
    op.execute(
        "UPDATE mfa_enrollments SET totp_last_step = (SELECT u.totp_last_step FROM users u"
        " WHERE u.id = mfa_enrollments.user_id)"
        " WHERE method = 'totp' AND vip_credential_id IS NULL")
    op.drop_column('users', 'totp_last_step')
