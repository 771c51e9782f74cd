"""Audit trail and MFA requirement requests

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 04:21:28.259258

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('audit_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('occurred_at', sa.DateTime(), nullable=False),
    sa.Column('event_type', sa.String(length=40), nullable=False),
    sa.Column('outcome', sa.String(length=10), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('subject_id', sa.Integer(), nullable=True),
    sa.Column('practice_id', sa.Integer(), nullable=True),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.Column('user_agent', sa.String(length=300), nullable=True),
    sa.Column('request_id', sa.String(length=32), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('row_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_actor_id_id', ['actor_id', 'id'], unique=False)
        batch_op.create_index('ix_audit_events_event_type_id', ['event_type', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_occurred_at'), ['occurred_at'], unique=False)
        batch_op.create_index('ix_audit_events_practice_id_id', ['practice_id', 'id'], unique=False)
        batch_op.create_index('ix_audit_events_subject_id_id', ['subject_id', 'id'], unique=False)

    op.create_table('requirement_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('practice_id', sa.Integer(), nullable=False),
    sa.Column('requested_by_id', sa.Integer(), nullable=False),
    sa.Column('require', sa.Boolean(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.Column('decision_note', sa.Text(), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'approved', 'declined')",
                       name=op.f('ck_requirement_requests_status_allowed')),
    sa.ForeignKeyConstraint(['decided_by_id'], ['users.id'], name=op.f('fk_requirement_requests_decided_by_id_users')),
    sa.ForeignKeyConstraint(['practice_id'], ['practices.id'],
                            name=op.f('fk_requirement_requests_practice_id_practices')),
    sa.ForeignKeyConstraint(['requested_by_id'], ['users.id'],
                            name=op.f('fk_requirement_requests_requested_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_requirement_requests'))
    )
    with op.batch_alter_table('requirement_requests', schema=None) as batch_op:
        batch_op.create_index('ix_requirement_requests_practice_id_id', ['practice_id', 'id'], unique=False)
        batch_op.create_index('ix_requirement_requests_status_id', ['status', 'id'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        # Append-only: the database itself refuses to change or remove audit rows.
        op.execute("""
            CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP;
            END;
            $$ LANGUAGE plpgsql
        """)
        op.execute("""
            CREATE TRIGGER audit_events_append_only
            BEFORE UPDATE OR DELETE ON audit_events
            FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()
        """)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_events_append_only()")
    with op.batch_alter_table('requirement_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_requirement_requests_status_id')
        batch_op.drop_index('ix_requirement_requests_practice_id_id')

    op.drop_table('requirement_requests')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_subject_id_id')
        batch_op.drop_index('ix_audit_events_practice_id_id')
        batch_op.drop_index(batch_op.f('ix_audit_events_occurred_at'))
        batch_op.drop_index('ix_audit_events_event_type_id')
        batch_op.drop_index('ix_audit_events_actor_id_id')

    op.drop_table('audit_events')
