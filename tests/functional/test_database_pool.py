"""The database connections: a server's idle connection is checked before use (and replaced
if the server dropped it), one in use moments ago is not; on PostgreSQL, session saves are sent
without a transaction around them."""

import time

import psycopg
import pytest
from sqlalchemy import event, func, select, text

from portal.extensions import db
from portal.models import AuditEvent
from tests.conftest import AuthActions
from tests.factories import PASSWORD, make_user

# One pooled connection, so "the app's connection" is a single server process to look at.
ONE_CONNECTION = {"hide_parameters": True, "pool_size": 1, "max_overflow": 0, "pool_timeout": 10}
UNAVAILABLE = "briefly unavailable"


def server_or_skip():
    if db.engine.dialect.name == "sqlite":
        pytest.skip("a database file has no server connection to lose or check")


def backend_pid(app) -> int:
    """The PostgreSQL server process behind the app's one pooled connection."""
    with app.app_context(), db.engine.connect() as connection:
        return connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()


def end_server_process(pid: int) -> None:
    """What a server restart, or a firewall dropping an idle connection, does to the app's
    connection: its server process is gone (only the test's own app's process is ended)."""
    assert db.session.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}) is True
    db.session.commit()
    for _ in range(50):  # until the server has finished ending it
        if not db.session.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}):
            return
        db.session.rollback()
        time.sleep(0.05)
    raise AssertionError("the server process did not end")


def count_pings(app, monkeypatch) -> list:
    with app.app_context():
        dialect = db.engine.dialect
    pings = []
    real_ping = dialect.do_ping

    def counted(dbapi_connection):
        pings.append(1)
        return real_ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counted)
    return pings


def logged_in(app):
    make_user("pool@example.test", display_name="Pat Pool")
    client = app.test_client()
    assert AuthActions(client).login("pool@example.test", PASSWORD).headers["Location"] == "/"
    return client


def test_a_connection_the_server_dropped_while_idle_is_replaced_before_use(make_app, app):
    """The server ends the app's idle connection (a restart, an idle timeout): is the next
    request answered as usual, on a new connection, with nothing lost?"""
    server_or_skip()
    portal = make_app(SQLALCHEMY_ENGINE_OPTIONS=ONE_CONNECTION, DATABASE_PING_AFTER_IDLE_SECONDS=0.2)
    client = logged_in(portal)
    dropped = backend_pid(portal)
    end_server_process(dropped)
    time.sleep(0.3)  # idle past the setting

    page = client.get("/")
    assert page.status_code == 200 and "Welcome, Pat Pool." in page.get_data(as_text=True)
    assert backend_pid(portal) != dropped


def test_a_connection_used_moments_ago_is_not_checked_again(make_app, app, monkeypatch):
    """Are requests that follow each other closely spared the check (one round trip per
    checkout), while a connection left idle past the setting is checked?"""
    server_or_skip()
    portal = make_app(SQLALCHEMY_ENGINE_OPTIONS=ONE_CONNECTION, DATABASE_PING_AFTER_IDLE_SECONDS=0.5)
    client = logged_in(portal)
    pings = count_pings(portal, monkeypatch)
    for _ in range(5):
        assert client.get("/").status_code == 200
    assert pings == []

    time.sleep(0.6)
    assert client.get("/").status_code == 200
    assert pings == [1]  # the request's own checkout; its session save follows moments later


def test_a_connection_dropped_while_in_use_costs_one_request_the_unavailable_page(make_app, app):
    """A connection that was working a moment ago is not checked, so if the server dropped it
    meanwhile, that one request gets the portal's 503 page, writing nothing; is the next one
    served as usual?"""
    server_or_skip()
    portal = make_app(SQLALCHEMY_ENGINE_OPTIONS=ONE_CONNECTION, DATABASE_PING_AFTER_IDLE_SECONDS=60)
    client = logged_in(portal)
    events_before = db.session.scalar(select(func.count(AuditEvent.id)))
    end_server_process(backend_pid(portal))

    failed = client.post("/logout")
    assert failed.status_code == 503 and UNAVAILABLE in failed.get_data(as_text=True)
    assert db.session.scalar(select(func.count(AuditEvent.id))) == events_before  # no logout recorded
    page = client.get("/")
    assert page.status_code == 200 and "Welcome, Pat Pool." in page.get_data(as_text=True)


def test_a_session_is_saved_without_a_transaction_around_it(make_app, app):
    """Is each session save (a new session at Log In, an update, a rename at the code step)
    sent on its own, so no BEGIN and COMMIT travel to the server with it? (SQLite keeps its
    short transactions: in the process they cost no round trip.)"""
    server_or_skip()
    portal = make_app(SESSION_REDIS_URL=None, SESSION_REFRESH_EACH_REQUEST=True)
    with portal.app_context():
        engine = db.engine
    left_open = []

    def after(_conn, cursor, statement, *_args):
        if statement.startswith(("INSERT INTO sessions", "UPDATE sessions", "DELETE FROM sessions")):
            dbapi = cursor.connection  # psycopg's
            left_open.append(dbapi.info.transaction_status != psycopg.pq.TransactionStatus.IDLE)

    event.listen(engine, "after_cursor_execute", after)
    try:
        client = logged_in(portal)
        assert client.get("/").status_code == 200
        assert client.get("/account/security").status_code == 200
    finally:
        event.remove(engine, "after_cursor_execute", after)
    assert len(left_open) >= 3 and not any(left_open), left_open
