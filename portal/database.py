"""The database engine's setup: SQLite's settings, when a server's connection is checked, and
a connection for writes of one statement each.

A PostgreSQL server may restart, or drop a connection that sat idle, under a running portal.
SQLAlchemy's `pool_pre_ping` answers that by pinging the server at every checkout. But a
request checks a connection out twice (its own transaction, then the session's write), so half
of a short request's round trips would be pings of a connection that answered a few
milliseconds ago. Here a connection is pinged only when it has sat in the pool for at least
DATABASE_PING_AFTER_IDLE_SECONDS; a ping that finds it gone raises SQLAlchemy's
DisconnectionError, and the pool replaces it with a new connection before the request uses it
(the mechanism `pool_pre_ping` itself uses). After a server restart every pooled connection
has been idle at least as long as the restart took, so each is checked before use.

A database file (SQLite) has no connection to lose: it is never pinged.
"""

from __future__ import annotations

import functools
import time

from flask import Flask
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError

from portal.extensions import db

# Where a pooled connection's record keeps when it was last returned (cleared with the record
# when the connection is replaced, so a new connection is never pinged: it has just connected).
_RETURNED_AT = "portal_returned_at"


def init_database(app: Flask) -> None:
    with app.app_context():
        engine = db.engine
    if engine.dialect.name == "sqlite":
        _tune_sqlite(engine)
    else:
        _ping_idle_connections(engine, app.config["DATABASE_PING_AFTER_IDLE_SECONDS"])


def _tune_sqlite(engine) -> None:
    """SQLite (development, single host): write-ahead log so readers never block the writer,
    normal sync (safe with WAL), and a busy timeout instead of immediate "database is locked"."""

    @event.listens_for(engine, "connect")
    def set_pragmas(connection, _record):
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def _ping_idle_connections(engine, idle_seconds: float) -> None:
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def note_return(_dbapi_connection, record):
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def ping_if_idle(dbapi_connection, record, _proxy):
        returned_at = record.info.get(_RETURNED_AT)
        if returned_at is None or time.monotonic() - returned_at < idle_seconds:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                raise DisconnectionError("the database server dropped an idle connection") from error
            raise


def single_statement_writes(engine):
    """A connection (context manager) for writes of one statement each, every one kept as it
    is sent.

    PostgreSQL: in autocommit, so no BEGIN and COMMIT travel with it (two round trips of
    three). SQLite: one short transaction, as everywhere else; in the process, BEGIN and COMMIT
    cost no round trip, and switching the connection to autocommit and back costs more."""
    if engine.dialect.name == "sqlite":
        return engine.begin()
    return _autocommit(engine).connect()


@functools.lru_cache(maxsize=8)
def _autocommit(engine):
    """The engine with its connections in autocommit (sharing its pool)."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")
