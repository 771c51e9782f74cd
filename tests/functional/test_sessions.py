"""Server-side sessions: the browser holds a random id; the data stays on the server."""

import pytest
from flask_session.redis import RedisSessionInterface
from sqlalchemy import select

from portal.extensions import db
from portal.models import ServerSession
from portal.sessions import DatabaseSessionInterface
from tests.conftest import TEST_SESSION_REDIS_URL, session_cookie
from tests.factories import PASSWORD, make_user


def stored_session(app, sid):
    """Read the raw stored record for a session id from whichever store is configured."""
    interface = app.session_interface
    key = app.config["SESSION_KEY_PREFIX"] + sid
    if isinstance(interface, RedisSessionInterface):
        return interface.client.get(key)
    record = db.session.scalar(select(ServerSession).where(ServerSession.session_id == key))
    return record.data if record else None


def test_store_matches_configuration(app):
    """Is the store the one configured: Redis with SESSION_REDIS_URL, the database otherwise?"""
    expected = RedisSessionInterface if TEST_SESSION_REDIS_URL else DatabaseSessionInterface
    assert isinstance(app.session_interface, expected)


def test_login_state_lives_on_the_server(app, client, auth):
    """After Log In, is the user's state stored server-side under the cookie's id?"""
    user = make_user("server@example.test")
    auth.login("server@example.test", PASSWORD)
    sid = session_cookie(client, app)
    data = stored_session(app, sid)
    assert data is not None
    decoded = app.session_interface.serializer.decode(data)
    assert decoded["_user_id"] == f"{user.id}:{user.session_version}"
    assert PASSWORD.encode() not in data


def test_logout_deletes_the_server_record(app, client, auth):
    make_user("gone@example.test")
    auth.login("gone@example.test", PASSWORD)
    sid = session_cookie(client, app)
    auth.logout()
    assert stored_session(app, sid) is None


def test_forged_cookie_gets_a_fresh_anonymous_session(app, client):
    """Does a made-up session id give access or get adopted?"""
    client.set_cookie(app.config["SESSION_COOKIE_NAME"], "made-up-session-id")
    response = client.get("/login")
    assert response.status_code == 200
    assert session_cookie(client, app) != "made-up-session-id"
    assert client.get("/").status_code == 303


@pytest.mark.skipif(not TEST_SESSION_REDIS_URL, reason="runs when TEST_SESSION_REDIS_URL is set (CI's second pass)")
def test_redis_session_has_a_ttl(app, client, auth):
    """Do Redis-stored sessions expire on their own (absolute lifetime)?"""
    make_user("ttl@example.test")
    auth.login("ttl@example.test", PASSWORD)
    key = app.config["SESSION_KEY_PREFIX"] + session_cookie(client, app)
    ttl = app.session_interface.client.ttl(key)
    assert 0 < ttl <= int(app.config["PERMANENT_SESSION_LIFETIME"].total_seconds())


def test_database_sessions_expire(make_app, app, client, auth):
    """Is an expired database session refused even if its row is still there?"""
    if TEST_SESSION_REDIS_URL:
        pytest.skip("this run stores sessions in Redis; the Redis TTL test covers expiry")
    from datetime import timedelta

    from portal.clock import now as utcnow

    make_user("expire@example.test")
    auth.login("expire@example.test", PASSWORD)
    key = app.config["SESSION_KEY_PREFIX"] + session_cookie(client, app)
    record = db.session.scalar(select(ServerSession).where(ServerSession.session_id == key))
    record.expiry = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert client.get("/").status_code == 303


@pytest.fixture
def session_writes(app):
    """Counts the writes of session records, whichever store is configured."""
    interface = app.session_interface
    original = interface._upsert_session
    writes = []

    def counting(*args, **kwargs):
        writes.append(1)
        return original(*args, **kwargs)

    interface._upsert_session = counting
    yield writes
    interface._upsert_session = original


def test_a_session_is_written_only_when_it_changes(app, client, auth, clock, session_writes):
    """Do pages that change nothing leave the session record alone, while the idle clock still
    moves at most once a minute (so a user who keeps working is not logged out)?"""
    make_user("quiet@example.test")
    auth.login("quiet@example.test", PASSWORD)
    session_writes.clear()
    for _ in range(3):
        assert client.get("/").status_code == 200
    assert session_writes == []

    clock.advance(seconds=61)
    assert client.get("/").status_code == 200
    assert session_writes == [1]
    sid = session_cookie(client, app)
    seen = app.session_interface.serializer.decode(stored_session(app, sid))["seen_at"]
    assert seen == int(clock.now().timestamp())

    clock.advance(minutes=29)
    assert client.get("/").status_code == 200  # 29 minutes after the last recorded activity
    clock.advance(minutes=31)
    assert client.get("/").status_code == 303  # idle for longer than 30 minutes
