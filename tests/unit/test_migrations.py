"""The schema comes from the migrations alone, and they match the models."""

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from portal.extensions import db
from portal.models.base import render_item


@pytest.fixture
def empty_database(database_uri, tmp_path):
    """A brand-new empty database on the same kind of server as the test run."""
    url = make_url(database_uri)
    if url.get_backend_name() == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    name = f"portal_migration_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


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
            connection, opts={"compare_type": True, "render_item": render_item}
        )
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def test_cli_db_upgrade_runs(runner):
    """Does the documented `flask db upgrade` command succeed at head?"""
    result = runner.invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
