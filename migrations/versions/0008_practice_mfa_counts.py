"""Per-practice MFA counts, kept by triggers

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 07:10:00

The practice review shows how many active users have each method. Counting them on every page
view costs time in proportion to the practice's size; these rows hold the counts instead, and
triggers change them in the same transaction as the users and enrollments they count.

Every trigger first touches the practice's (active, "none") row, so on PostgreSQL concurrent
changes in one practice queue on that row lock instead of locking counter rows in different
orders (no deadlocks).
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

BUCKETS = [(active, method) for active in (True, False) for method in ("none", "totp", "sms", "email")]

# The statements each trigger runs, written once for both databases (SQLite triggers and
# PostgreSQL trigger functions). {ref} is NEW or OLD.
_LOCK = ("UPDATE practice_mfa_counts SET users = users WHERE practice_id = {practice} "
         "AND active = {true} AND method = 'none'")
_USER_BUMP = ("UPDATE practice_mfa_counts SET users = users {sign} 1 WHERE practice_id = {ref}.practice_id "
              "AND active = {ref}.active AND method = COALESCE("
              "(SELECT method FROM mfa_enrollments WHERE user_id = {ref}.id), 'none')")
# An enrollment moves its user from "none" to its method (sign -1 undoes that).
_ENROLLMENT_MOVE = ("UPDATE practice_mfa_counts SET users = users + (CASE WHEN method = {ref}.method "
                    "THEN {sign}1 ELSE -({sign}1) END) "
                    "WHERE practice_id = (SELECT practice_id FROM users WHERE id = {ref}.user_id) "
                    "AND active = (SELECT active FROM users WHERE id = {ref}.user_id) "
                    "AND method IN ({ref}.method, 'none')")
_ENROLLMENT_PRACTICE = "(SELECT practice_id FROM users WHERE id = {ref}.user_id)"


def _statements(dialect: str) -> dict[str, list[str]]:
    true = "TRUE" if dialect == "postgresql" else "1"
    return {
        "user_insert": [_LOCK.format(practice="NEW.practice_id", true=true),
                        _USER_BUMP.format(sign="+", ref="NEW")],
        "user_update": [_LOCK.format(practice="OLD.practice_id", true=true),
                        _LOCK.format(practice="NEW.practice_id", true=true),
                        _USER_BUMP.format(sign="-", ref="OLD"),
                        _USER_BUMP.format(sign="+", ref="NEW")],
        "user_delete": [_LOCK.format(practice="OLD.practice_id", true=true),
                        _USER_BUMP.format(sign="-", ref="OLD")],
        "enrollment_insert": [_LOCK.format(practice=_ENROLLMENT_PRACTICE.format(ref="NEW"), true=true),
                              _ENROLLMENT_MOVE.format(sign="+", ref="NEW")],
        "enrollment_update": [_LOCK.format(practice=_ENROLLMENT_PRACTICE.format(ref="OLD"), true=true),
                              _LOCK.format(practice=_ENROLLMENT_PRACTICE.format(ref="NEW"), true=true),
                              _ENROLLMENT_MOVE.format(sign="-", ref="OLD"),
                              _ENROLLMENT_MOVE.format(sign="+", ref="NEW")],
        "enrollment_delete": [_LOCK.format(practice=_ENROLLMENT_PRACTICE.format(ref="OLD"), true=true),
                              _ENROLLMENT_MOVE.format(sign="-", ref="OLD")],
        "practice_insert": [
            "INSERT INTO practice_mfa_counts (practice_id, active, method, users) VALUES "
            + ", ".join(f"(NEW.id, {true if active else ('FALSE' if dialect == 'postgresql' else '0')}, '{method}', 0)"
                        for active, method in BUCKETS)
        ],
    }


# (name, timing and event, table, statements key, condition)
TRIGGERS = [
    ("practice_mfa_counts_user_insert", "AFTER INSERT", "users", "user_insert", "NEW.practice_id IS NOT NULL"),
    ("practice_mfa_counts_user_update", "AFTER UPDATE OF practice_id, active", "users", "user_update",
     "OLD.practice_id {differs} NEW.practice_id OR OLD.active {differs} NEW.active"),
    # Before the row goes, while its enrollment (deleted by the cascade afterwards) still says
    # which method it counted under; the enrollment's own trigger then finds no user and does nothing.
    ("practice_mfa_counts_user_delete", "BEFORE DELETE", "users", "user_delete", "OLD.practice_id IS NOT NULL"),
    ("practice_mfa_counts_enrollment_insert", "AFTER INSERT", "mfa_enrollments", "enrollment_insert", None),
    ("practice_mfa_counts_enrollment_update", "AFTER UPDATE OF user_id, method", "mfa_enrollments",
     "enrollment_update", "OLD.user_id <> NEW.user_id OR OLD.method <> NEW.method"),
    ("practice_mfa_counts_enrollment_delete", "AFTER DELETE", "mfa_enrollments", "enrollment_delete", None),
    ("practice_mfa_counts_practice_insert", "AFTER INSERT", "practices", "practice_insert", None),
]


def upgrade():
    op.create_table('practice_mfa_counts',
    sa.Column('practice_id', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('method', sa.String(length=10), nullable=False),
    sa.Column('users', sa.Integer(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['practice_id'], ['practices.id'],
                            name=op.f('fk_practice_mfa_counts_practice_id_practices'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('practice_id', 'active', 'method', name=op.f('pk_practice_mfa_counts'))
    )
    dialect = op.get_bind().dialect.name
    true, false = ("TRUE", "FALSE") if dialect == "postgresql" else ("1", "0")
    # Counts for the practices and users already there.
    for active, method in BUCKETS:
        flag = true if active else false
        op.execute(
            "INSERT INTO practice_mfa_counts (practice_id, active, method, users) "
            f"SELECT p.id, {flag}, '{method}', (SELECT count(*) FROM users u "
            "LEFT JOIN mfa_enrollments e ON e.user_id = u.id "
            f"WHERE u.practice_id = p.id AND u.active = {flag} AND COALESCE(e.method, 'none') = '{method}') "
            "FROM practices p"
        )
    statements = _statements(dialect)
    differs = "IS DISTINCT FROM" if dialect == "postgresql" else "IS NOT"  # comparisons that see NULL
    for name, timing, table, key, condition in TRIGGERS:
        condition = condition.format(differs=differs) if condition else None
        if dialect == "postgresql":
            body = "\n    ".join(f"{statement};" for statement in statements[key])
            returned = "OLD" if timing.startswith("BEFORE") else "NULL"
            op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n    {body}\n"
                       f"    RETURN {returned};\nEND\n$$")
            when = f" WHEN ({condition})" if condition else ""
            op.execute(f"CREATE TRIGGER {name} {timing} ON {table} FOR EACH ROW{when} EXECUTE FUNCTION {name}()")
        else:
            when = f" WHEN {condition}" if condition else ""
            body = "\n    ".join(f"{statement};" for statement in statements[key])
            op.execute(f"CREATE TRIGGER {name} {timing} ON {table} FOR EACH ROW{when}\nBEGIN\n    {body}\nEND")


def downgrade():
    dialect = op.get_bind().dialect.name
    for name, _timing, table, _key, _condition in TRIGGERS:
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table('practice_mfa_counts')
