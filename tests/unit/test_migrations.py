"""The schema comes from the migrations alone, and they match the models."""


from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from portal.extensions import db
from portal.models.base import render_item, skip_search_indexes


def test_upgrade_from_empty_to_head_and_back(make_app, empty_database):
    """Does `flask db upgrade` build the whole schema on an empty database, and downgrade undo it?"""
    app = make_app(SQLALCHEMY_DATABASE_URI=empty_database)
    with app.app_context():
        assert inspect(db.engine).get_table_names() == []
        upgrade()
        tables = set(inspect(db.engine).get_table_names())
        assert {"practices", "users", "sessions", "invitations", "password_resets", "outbox_messages"} <= tables
        assert tables - {"alembic_version"} == set(db.metadata.tables)
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade()


def test_models_and_migrations_do_not_drift(app):
    """Would `flask db migrate` find anything to add? (The models and migrations agree.)"""
    with db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "render_item": render_item, "include_object": skip_search_indexes},
        )
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def test_cli_db_upgrade_runs(runner):
    """Does the documented `flask db upgrade` command succeed at head?"""
    result = runner.invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output


def test_upgrade_counts_the_users_already_there(make_app, empty_database):
    """Upgrading a database that already has practices, users and methods: do the kept MFA
    counts (0008) start from what is there?"""
    app = make_app(SQLALCHEMY_DATABASE_URI=empty_database)
    with app.app_context():
        upgrade(revision="0007")
        true = "TRUE" if db.engine.dialect.name == "postgresql" else "1"
        false = "FALSE" if db.engine.dialect.name == "postgresql" else "0"
        with db.engine.begin() as connection:
            connection.execute(text(f"INSERT INTO practices (id, name, mfa_required, created_at) VALUES "
                                    f"(1, 'Oak', {false}, '2026-01-01'), (2, 'Elm', {false}, '2026-01-01')"))
            for user_id, practice_id, active in ((1, 1, true), (2, 1, true), (3, 1, false), (4, 2, true)):
                connection.execute(text(
                    "INSERT INTO users (id, email, display_name, role, practice_id, password_hash, active, "
                    "session_version, created_at, mfa_failed_count, failed_password_count) VALUES "
                    f"({user_id}, 'u{user_id}@example.test', 'U', 'clinician', {practice_id}, 'x', {active}, 1, "
                    "'2026-01-01', 0, 0)"))
            connection.execute(text("INSERT INTO mfa_enrollments (user_id, method, enrolled_at) VALUES "
                                    "(1, 'email', '2026-01-01'), (3, 'email', '2026-01-01')"))
        upgrade()
        with db.engine.connect() as connection:
            counts = {tuple(row[:3]): row[3] for row in connection.execute(text(
                "SELECT practice_id, active, method, users FROM practice_mfa_counts WHERE users > 0"))}
        assert counts == {(1, True, "email"): 1, (1, True, "none"): 1, (1, False, "email"): 1, (2, True, "none"): 1}
        downgrade(revision="base")
