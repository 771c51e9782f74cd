"""MFA enrollments, pending enrollments, codes and user counters

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 04:13:07.807683

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('mfa_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.String(length=10), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('destination_hash', sa.String(length=64), nullable=False),
    sa.Column('challenge', sa.String(length=64), nullable=False),
    sa.Column('code_hmac', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('consumed_at', sa.DateTime(), nullable=True),
    sa.Column('voided_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("channel IN ('sms', 'email')", name=op.f('ck_mfa_codes_channel_allowed')),
    sa.CheckConstraint("purpose IN ('login', 'enroll')", name=op.f('ck_mfa_codes_purpose_allowed')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_mfa_codes_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mfa_codes'))
    )
    with op.batch_alter_table('mfa_codes', schema=None) as batch_op:
        batch_op.create_index('ix_mfa_codes_destination_created', ['destination_hash', 'created_at'], unique=False)
        batch_op.create_index('ix_mfa_codes_user_purpose', ['user_id', 'purpose'], unique=False)

    op.create_table('mfa_enrollments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(length=10), nullable=False),
    sa.Column('phone_e164', sa.String(length=16), nullable=True),
    sa.Column('totp_secret', sa.Text(), nullable=True),
    sa.Column('totp_last_step', sa.BigInteger(), nullable=True),
    sa.Column('enrolled_at', sa.DateTime(), nullable=False),
    sa.Column('last_used_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("(method = 'sms' AND phone_e164 IS NOT NULL AND totp_secret IS NULL) "
                       "OR (method = 'totp' AND totp_secret IS NOT NULL AND phone_e164 IS NULL) "
                       "OR (method = 'email' AND phone_e164 IS NULL AND totp_secret IS NULL)",
                       name=op.f('ck_mfa_enrollments_details_match_method')),
    sa.CheckConstraint("method IN ('sms', 'email', 'totp')", name=op.f('ck_mfa_enrollments_method_allowed')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_mfa_enrollments_user_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mfa_enrollments')),
    sa.UniqueConstraint('user_id', name=op.f('uq_mfa_enrollments_user_id'))
    )
    op.create_table('mfa_pending_enrollments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(length=10), nullable=False),
    sa.Column('phone_e164', sa.String(length=16), nullable=True),
    sa.Column('totp_secret', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("(method = 'sms' AND phone_e164 IS NOT NULL AND totp_secret IS NULL) "
                       "OR (method = 'totp' AND totp_secret IS NOT NULL AND phone_e164 IS NULL) "
                       "OR (method = 'email' AND phone_e164 IS NULL AND totp_secret IS NULL)",
                       name=op.f('ck_mfa_pending_enrollments_details_match_method')),
    sa.CheckConstraint("method IN ('sms', 'email', 'totp')", name=op.f('ck_mfa_pending_enrollments_method_allowed')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_mfa_pending_enrollments_user_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mfa_pending_enrollments')),
    sa.UniqueConstraint('user_id', name=op.f('uq_mfa_pending_enrollments_user_id'))
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mfa_failed_count', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('mfa_locked_until', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('last_mfa_at', sa.DateTime(), nullable=True))



def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('last_mfa_at')
        batch_op.drop_column('mfa_locked_until')
        batch_op.drop_column('mfa_failed_count')

    op.drop_table('mfa_pending_enrollments')
    op.drop_table('mfa_enrollments')
    with op.batch_alter_table('mfa_codes', schema=None) as batch_op:
        batch_op.drop_index('ix_mfa_codes_user_purpose')
        batch_op.drop_index('ix_mfa_codes_destination_created')

    op.drop_table('mfa_codes')
