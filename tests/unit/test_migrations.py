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


def test_upgrade_moves_an_authenticators_last_step_onto_its_user(make_app, empty_database):
    """0017: does an authenticator app's last accepted step (the replay guard) reach its user,
    while a VIP Access credential keeps its own, and does downgrading put them back?"""
    app = make_app(SQLALCHEMY_DATABASE_URI=empty_database)
    with app.app_context():
        upgrade(revision="0016")
        with db.engine.begin() as connection:
            connection.execute(text("INSERT INTO practices (id, name, mfa_required, created_at) VALUES "
                                    f"(1, 'Oak', {'FALSE' if db.engine.dialect.name == 'postgresql' else '0'}, "
                                    "'2026-01-01')"))
            for user_id in (1, 2, 3):
                connection.execute(text(
                    "INSERT INTO users (id, email, display_name, role, practice_id, password_hash, "
                    "session_version, created_at, mfa_failed_count, failed_password_count) VALUES "
                    f"({user_id}, 'u{user_id}@example.test', 'U', 'clinician', 1, 'x', 1, '2026-01-01', 0, 0)"))
            connection.execute(text(
                "INSERT INTO mfa_enrollments (user_id, method, totp_secret, vip_credential_id, vip_last_code, "
                "totp_last_step, enrolled_at, last_used_at) VALUES "
                "(1, 'totp', 'secret', NULL, NULL, 59000001, '2026-01-01', '2026-01-02'), "
                "(2, 'totp', NULL, 'VSST12345678', 'digest', 59000002, '2026-01-01', '2026-01-02'), "
                "(3, 'email', NULL, NULL, NULL, NULL, '2026-01-01', NULL)"))
        upgrade()
        with db.engine.connect() as connection:
            users = dict(connection.execute(text("SELECT id, totp_last_step FROM users ORDER BY id")).all())
            vip = dict(connection.execute(text("SELECT user_id, vip_last_step FROM mfa_enrollments")).all())
        assert users == {1: 59000001, 2: None, 3: None}
        assert vip == {1: None, 2: 59000002, 3: None}
        downgrade(revision="0016")
        with db.engine.connect() as connection:
            steps = dict(connection.execute(text("SELECT user_id, totp_last_step FROM mfa_enrollments")).all())
        assert steps == {1: 59000001, 2: 59000002, 3: None}
        downgrade(revision="base")
