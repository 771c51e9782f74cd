"""Every sort and filter of the practice review from an index

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 22:30:00

The review table sorts a practice's users by name, email, method, enrolment date or last MFA
login, either way, and filters them by whether they have MFA. A page is 25 rows; without an
index in the sort's order the database reads and sorts the whole practice for each of them.

- The method and its enrolment date live in mfa_enrollments, which knows nothing of practices.
  Triggers copy them onto the user (`mfa_method_rank`, the method's place among the labels in
  alphabetical order, and `mfa_enrolled_at`; both NULL without MFA), so one index on users,
  (practice_id, column, id), serves each sort and the with/without MFA filters.
- The table keeps users without a value last in both directions. PostgreSQL's default
  ascending order puts NULLs last, so the plain index serves "asc"; "desc NULLS LAST" is not
  that index read backwards, so each nullable column has a second, DESC NULLS LAST index.
- Names sort case-insensitively: PostgreSQL gets an index on lower(display_name); the plain
  (practice_id, display_name, id) index, which that sort cannot use, goes.

The PostgreSQL-only indexes (SQLite cannot declare NULLS LAST in an index nor reflect an
expression index) are named ix_users_review_*, which `skip_search_indexes` in
portal/models/base.py keeps out of autogenerate. SQLite sorts the practice's rows (its sizes).

The copy trigger is named to fire before the practice_mfa_counts triggers of 0008 (PostgreSQL
fires a table's triggers in name order): it locks the user's row first, then the counts row,
the same order as an update of the user, so the two never wait on each other in a circle.
"""
import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

# The methods by their labels in alphabetical order ("Authenticator Apps", "Email", "SMS"); a
# test compares this with the registry (portal.mfa.methods), so the table sorts by what it shows.
RANK = "CASE {ref}.method WHEN 'totp' THEN 0 WHEN 'email' THEN 1 WHEN 'sms' THEN 2 END"
_CLEAR = "UPDATE users SET mfa_method_rank = NULL, mfa_enrolled_at = NULL WHERE id = OLD.user_id"
_COPY = (f"UPDATE users SET mfa_method_rank = {RANK.format(ref='NEW')}, mfa_enrolled_at = NEW.enrolled_at "
         "WHERE id = NEW.user_id")
# (name, timing and event, statements, condition)
TRIGGERS = [
    ("enrollment_copied_to_user_insert", "AFTER INSERT", [_COPY], None),
    ("enrollment_copied_to_user_update", "AFTER UPDATE OF user_id, method, enrolled_at", [_CLEAR, _COPY],
     "OLD.user_id <> NEW.user_id OR OLD.method <> NEW.method OR OLD.enrolled_at {differs} NEW.enrolled_at"),
    ("enrollment_copied_to_user_delete", "AFTER DELETE", [_CLEAR], None),
]
PLAIN_INDEXES = (
    ('ix_users_practice_id_mfa_method_rank', 'mfa_method_rank'),
    ('ix_users_practice_id_mfa_enrolled_at', 'mfa_enrolled_at'),
    ('ix_users_practice_id_last_mfa_at', 'last_mfa_at'),
)
POSTGRESQL_INDEXES = (
    ('ix_users_review_name', 'practice_id, lower(display_name), id'),
    ('ix_users_review_method_desc', 'practice_id, mfa_method_rank DESC NULLS LAST, id DESC'),
    ('ix_users_review_enrolled_desc', 'practice_id, mfa_enrolled_at DESC NULLS LAST, id DESC'),
    ('ix_users_review_last_mfa_desc', 'practice_id, last_mfa_at DESC NULLS LAST, id DESC'),
)


# Plain operations, no batch mode: the users table is never copied, so the triggers of 0008 on
# it stay in place.
def upgrade():
    dialect = op.get_bind().dialect.name
    op.add_column('users', sa.Column('mfa_method_rank', sa.SmallInteger(), nullable=True))
    op.add_column('users', sa.Column('mfa_enrolled_at', sa.DateTime(), nullable=True))
    op.execute(f"UPDATE users SET mfa_method_rank = (SELECT {RANK.format(ref='e')} FROM mfa_enrollments e "
               "WHERE e.user_id = users.id), mfa_enrolled_at = (SELECT e.enrolled_at FROM mfa_enrollments e "
               "WHERE e.user_id = users.id)")
    differs = "IS DISTINCT FROM" if dialect == "postgresql" else "IS NOT"
    for name, timing, statements, condition in TRIGGERS:
        condition = condition.format(differs=differs) if condition else None
        body = "\n    ".join(f"{statement};" for statement in statements)
        if dialect == "postgresql":
            op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n    {body}\n"
                       "    RETURN NULL;\nEND\n$$")
            when = f" WHEN ({condition})" if condition else ""
            op.execute(f"CREATE TRIGGER {name} {timing} ON mfa_enrollments FOR EACH ROW{when} "
                       f"EXECUTE FUNCTION {name}()")
        else:
            when = f" WHEN {condition}" if condition else ""
            op.execute(f"CREATE TRIGGER {name} {timing} ON mfa_enrollments FOR EACH ROW{when}\nBEGIN\n    {body}\nEND")
    op.drop_index('ix_users_practice_id_display_name', table_name='users')
    for name, column in PLAIN_INDEXES:
        op.create_index(name, 'users', ['practice_id', column, 'id'], unique=False)
    if dialect == 'postgresql':
        for name, columns in POSTGRESQL_INDEXES:
            op.execute(f'CREATE INDEX {name} ON users ({columns})')


def downgrade():
    dialect = op.get_bind().dialect.name
    if dialect == 'postgresql':
        for name, _columns in POSTGRESQL_INDEXES:
            op.execute(f'DROP INDEX IF EXISTS {name}')
    for name, _column in PLAIN_INDEXES:
        op.drop_index(name, table_name='users')
    op.create_index('ix_users_practice_id_display_name', 'users', ['practice_id', 'display_name', 'id'], unique=False)
    for name, _timing, _statements, _condition in TRIGGERS:
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON mfa_enrollments")
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_column('users', 'mfa_enrolled_at')
    op.drop_column('users', 'mfa_method_rank')
