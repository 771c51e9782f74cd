"""Symantec VIP Access: an Authenticator Apps method may hold a VIP Credential ID instead of a
secret, and the last code VIP accepted (for replays)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 15:00:00

The method stays "totp" (one Authenticator Apps method per user, counted as one in the practice
counts of 0008); its row holds either the encrypted secret or the Credential ID. On SQLite the
constraint change rebuilds both tables; 0008's count triggers, which name mfa_enrollments, are
dropped first and created again afterwards from 0008's own definitions.
"""
import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

TABLES = ('mfa_enrollments', 'mfa_pending_enrollments')

OLD_CHECK = (
    "(method = 'sms' AND phone_e164 IS NOT NULL AND totp_secret IS NULL)"
    " OR (method = 'totp' AND totp_secret IS NOT NULL AND phone_e164 IS NULL)"
    " OR (method = 'email' AND phone_e164 IS NULL AND totp_secret IS NULL)"
)
NEW_CHECK = (
    "(method = 'sms' AND phone_e164 IS NOT NULL AND totp_secret IS NULL AND vip_credential_id IS NULL)"
    " OR (method = 'totp' AND phone_e164 IS NULL AND ((totp_secret IS NOT NULL AND vip_credential_id IS NULL)"
    " OR (totp_secret IS NULL AND vip_credential_id IS NOT NULL)))"
    " OR (method = 'email' AND phone_e164 IS NULL AND totp_secret IS NULL AND vip_credential_id IS NULL)"
)


def _counts_migration():
    """Migration 0008, for its trigger definitions."""
    path = Path(__file__).with_name('0008_practice_mfa_counts.py')
    spec = importlib.util.spec_from_file_location('portal_migration_0008', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _drop_count_triggers(counts) -> None:
    for name, *_rest in counts.TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")


def _create_count_triggers(counts) -> None:
    """SQLite: 0008's triggers as 0008 creates them."""
    statements = counts._statements('sqlite')
    for name, timing, table, key, condition in counts.TRIGGERS:
        when = f" WHEN {condition.format(differs='IS NOT')}" if condition else ""
        body = "\n    ".join(f"{statement};" for statement in statements[key])
        op.execute(f"CREATE TRIGGER {name} {timing} ON {table} FOR EACH ROW{when}\nBEGIN\n    {body}\nEND")


def _change(add: bool, check: str) -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    counts = _counts_migration() if sqlite else None
    if sqlite:
        # The rebuild renames tables that the triggers name: they go first and come back after.
        _drop_count_triggers(counts)
    for table in TABLES:
        with op.batch_alter_table(table, schema=None, recreate='always' if sqlite else 'never') as batch_op:
            batch_op.drop_constraint(op.f(f'ck_{table}_details_match_method'), type_='check')
            if add:
                batch_op.add_column(sa.Column('vip_credential_id', sa.String(length=12), nullable=True))
                if table == 'mfa_enrollments':
                    batch_op.add_column(sa.Column('vip_last_code', sa.String(length=64), nullable=True))
            else:
                batch_op.drop_column('vip_credential_id')
                if table == 'mfa_enrollments':
                    batch_op.drop_column('vip_last_code')
            batch_op.create_check_constraint(op.f(f'ck_{table}_details_match_method'), sa.text(check))
    if sqlite:
        _create_count_triggers(counts)


def upgrade():
    _change(True, NEW_CHECK)


def downgrade():
    # VIP Access methods cannot be kept without their column: they go (support clears them first).
    op.execute("DELETE FROM mfa_pending_enrollments WHERE vip_credential_id IS NOT NULL")
    op.execute("DELETE FROM mfa_enrollments WHERE vip_credential_id IS NOT NULL")
    _change(False, OLD_CHECK)
