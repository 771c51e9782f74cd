"""The connection pool checks a server's connection before use; a database file needs no check."""

from portal.extensions import db


def test_only_a_database_server_is_pinged_before_each_checkout(app):
    """PostgreSQL may restart under the portal, so its pool pings before handing a connection
    out; SQLite is a file in the process, so its pool does not spend a statement on it."""
    pool = db.engine.pool
    assert pool._pre_ping is (db.engine.dialect.name != "sqlite")
