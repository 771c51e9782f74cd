"""Audit trail sealed off the request path: seal columns, seal state, checkpoints; the old
chain's head goes into the first checkpoint; PostgreSQL also refuses TRUNCATE

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 08:00:00

Writers stop taking `audit_chain_lock` (it stays one release, so instances of the previous
version can still write while a rolling upgrade replaces them). Existing rows keep their
unkeyed `prev_hash`/`row_hash` and are sealed by the sealer like any new row, in the background
and in short transactions (this migration holds no lock while rows are sealed); `flask audit
seal` seals them at once. Before the schema changes, the old chain is checked once and its head
(last row's hash, its id, the row count, intact or where it broke) is written as the first
checkpoint: to the log, to AUDIT_CHECKPOINT_PATH on the host running the upgrade, and to
`audit_checkpoints`.
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

SEAL_COLUMNS = ("seal_seq", "seal_mac", "seal_key_id", "sealed_at")

# PostgreSQL: append-only, except that the sealer may fill the empty seal columns once and
# change nothing else (compared as jsonb without the seal columns, so a column added later is
# covered without touching this function). TRUNCATE is refused by a statement trigger.
APPEND_ONLY = """
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.seal_seq IS NULL AND OLD.seal_mac IS NULL AND OLD.seal_key_id IS NULL AND OLD.sealed_at IS NULL
           AND NEW.seal_seq IS NOT NULL AND NEW.seal_mac IS NOT NULL AND NEW.seal_key_id IS NOT NULL
           AND NEW.sealed_at IS NOT NULL
           AND (to_jsonb(NEW) - '{seal_seq,seal_mac,seal_key_id,sealed_at}'::text[])
               = (to_jsonb(OLD) - '{seal_seq,seal_mac,seal_key_id,sealed_at}'::text[]) THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'audit_events is append-only: only the sealer may fill the empty seal columns, once';
    END IF;
    RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP;
END;
$$ LANGUAGE plpgsql
"""

OLD_APPEND_ONLY = """
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP;
END;
$$ LANGUAGE plpgsql
"""

CHECKPOINTS_APPEND_ONLY = """
CREATE FUNCTION audit_checkpoints_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_checkpoints is append-only: % is not allowed', TG_OP;
END;
$$ LANGUAGE plpgsql
"""


def _events_table():
    from portal.models.base import UTCDateTime

    return sa.table(
        'audit_events',
        sa.column('id', sa.BigInteger()), sa.column('occurred_at', UTCDateTime()), sa.column('event_type'),
        sa.column('outcome'), sa.column('actor_id'), sa.column('subject_id'), sa.column('practice_id'),
        sa.column('ip'), sa.column('user_agent'), sa.column('request_id'), sa.column('detail'),
        sa.column('prev_hash'), sa.column('row_hash'),
    )


def _walk_old_chain(bind, batch=5000):
    """Yield (row, previous hash) in id order."""
    from portal.audit import GENESIS

    events = _events_table()
    previous, last_id = GENESIS, None
    while True:
        query = sa.select(events).order_by(events.c.id).limit(batch)
        if last_id is not None:
            query = query.where(events.c.id > last_id)
        rows = bind.execute(query).all()
        if not rows:
            return
        for row in rows:
            yield row, previous
            previous, last_id = row.row_hash, row.id


def _old_head(bind):
    """Check the unkeyed chain once and return what the first checkpoint records about it."""
    from portal.audit import row_hash

    count, head, head_id, chain = 0, None, None, "intact"
    for row, previous in _walk_old_chain(bind):
        if chain == "intact":
            if row.prev_hash != previous:
                chain = f"broken at event id {row.id} (its link to the row before)"
            elif row.row_hash != row_hash(row.prev_hash, row):
                chain = f"broken at event id {row.id} (its content does not match its hash)"
        count, head, head_id = count + 1, row.row_hash, row.id
    return {"rows": count, "head": head, "head_id": head_id, "chain": chain}


def _first_checkpoint(bind, legacy):
    from flask import current_app

    from portal import clock
    from portal.audit import keys, seal

    audit_keys = keys.parse(current_app.config.get("AUDIT_KEYS") or [])
    body, line = seal.checkpoint_line(audit_keys, seq=0, mac=seal.GENESIS_MAC, at=clock.now(),
                                      extra={"legacy": legacy})
    seal.publish(bind, body, line, path=current_app.config["AUDIT_CHECKPOINT_PATH"])


def upgrade():
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    legacy = _old_head(bind)

    with op.batch_alter_table('audit_events') as batch:
        batch.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=True)
        batch.alter_column('row_hash', existing_type=sa.String(length=64), nullable=True)
        batch.add_column(sa.Column('seal_seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch.add_column(sa.Column('seal_mac', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('seal_key_id', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('sealed_at', sa.DateTime(), nullable=True))
        batch.create_index('uq_audit_events_seal_seq', ['seal_seq'], unique=True)
        batch.create_index('ix_audit_events_unsealed', ['id'], unique=False,
                           postgresql_where=sa.text('seal_seq IS NULL'), sqlite_where=sa.text('seal_seq IS NULL'))

    op.create_table(
        'audit_seal_state',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('passes', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('last_pass_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_seal_state')),
    )
    op.execute("INSERT INTO audit_seal_state (id, passes) VALUES (1, 0)")
    op.create_table(
        'audit_checkpoints',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('written_at', sa.DateTime(), nullable=False),
        sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('mac', sa.String(length=64), nullable=False),
        sa.Column('key_id', sa.String(length=32), nullable=False),
        sa.Column('line', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_checkpoints')),
    )
    op.create_index(op.f('ix_audit_checkpoints_written_at'), 'audit_checkpoints', ['written_at'], unique=False)

    if postgres:
        op.execute(APPEND_ONLY)
        op.execute("""
            CREATE TRIGGER audit_events_no_truncate
            BEFORE TRUNCATE ON audit_events
            FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()
        """)
        op.execute(CHECKPOINTS_APPEND_ONLY)
        op.execute("""
            CREATE TRIGGER audit_checkpoints_append_only
            BEFORE UPDATE OR DELETE ON audit_checkpoints
            FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_append_only()
        """)
        op.execute("""
            CREATE TRIGGER audit_checkpoints_no_truncate
            BEFORE TRUNCATE ON audit_checkpoints
            FOR EACH STATEMENT EXECUTE FUNCTION audit_checkpoints_append_only()
        """)

    if legacy["rows"]:
        _first_checkpoint(bind, legacy)


def _rechain(bind, batch=5000):
    """Give rows written since 0013 (no hash) the old unkeyed chain again, so the previous
    version's `flask audit verify` accepts the table. Rows already on the chain are left alone."""
    from portal.audit import GENESIS, row_hash

    events = _events_table()
    previous, last_id = GENESIS, None
    while True:
        query = sa.select(events).order_by(events.c.id).limit(batch)
        if last_id is not None:
            query = query.where(events.c.id > last_id)
        rows = bind.execute(query).all()
        if not rows:
            return
        for row in rows:
            if row.row_hash is None or row.prev_hash != previous:
                new_hash = row_hash(previous, row)
                bind.execute(sa.update(events).where(events.c.id == row.id).values(prev_hash=previous,
                                                                                   row_hash=new_hash))
                previous = new_hash
            else:
                previous = row.row_hash
            last_id = row.id


def downgrade():
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        op.execute("DROP TRIGGER IF EXISTS audit_checkpoints_no_truncate ON audit_checkpoints")
        op.execute("DROP TRIGGER IF EXISTS audit_checkpoints_append_only ON audit_checkpoints")
        op.execute("DROP FUNCTION IF EXISTS audit_checkpoints_append_only()")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
        op.execute(OLD_APPEND_ONLY)
        op.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
    _rechain(bind)
    if postgres:
        op.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only")

    op.drop_index(op.f('ix_audit_checkpoints_written_at'), table_name='audit_checkpoints')
    op.drop_table('audit_checkpoints')
    op.drop_table('audit_seal_state')
    with op.batch_alter_table('audit_events') as batch:
        batch.drop_index('ix_audit_events_unsealed')
        batch.drop_index('uq_audit_events_seal_seq')
        for column in reversed(SEAL_COLUMNS):
            batch.drop_column(column)
        batch.alter_column('row_hash', existing_type=sa.String(length=64), nullable=False)
        batch.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
