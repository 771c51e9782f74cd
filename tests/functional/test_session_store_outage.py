"""The session store (Redis) down or hung: the portal's own 503 page, fast, nothing half-written.

Each test starts its own redis-server on a free loopback port and stops it (SIGTERM), pauses
it (SIGSTOP: the kernel still accepts connections, nobody answers) or resumes it (SIGCONT) by
its process id, during a Log In, a code step and a signed-in page.
"""

from __future__ import annotations

import re
import time

import pytest
from markupsafe import escape
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AuditEvent, MfaCode, OutboxMessage, User
from portal.sessions import SESSIONS_LOST as LOST
from tests.factories import PASSWORD, make_enrollment, make_user
from tests.redis_server import OwnRedis

TIMEOUT = 0.5  # SESSION_REDIS_TIMEOUT for these tests (the default too)
SESSIONS_LOST = str(escape(LOST))  # as the page shows it
PROMPT = 3 * TIMEOUT + 1.0  # what "within the socket timeout" allows for, on a loaded CI machine
CODE_HTMX = {"HX-Request": "true", "HX-Target": "code-step"}


@pytest.fixture
def redis(tmp_path):
    server = OwnRedis(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def portal(make_app, app, redis):
    return make_app(SESSION_REDIS_URL=redis.url, SESSION_REDIS_TIMEOUT=TIMEOUT)


def timed(call, *args, **kwargs):
    started = time.monotonic()
    response = call(*args, **kwargs)
    return response, time.monotonic() - started


def assert_unavailable_page(response, elapsed):
    """The portal's own 503 page: prompt, with the request's reference, no one signed in."""
    html = response.get_data(as_text=True)
    assert response.status_code == 503, html
    assert elapsed < PROMPT, f"took {elapsed:.1f}s"
    assert "briefly unavailable" in html and "Internal Server Error" not in html
    assert re.search(rf"quote reference <strong>{response.headers['X-Request-ID']}</strong>", html)
    assert response.headers["Retry-After"] == "5"
    assert 'href="/static/css/portal.css' in html  # the usual layout...
    assert "Log Out" not in html and "Account Settings" not in html  # ...without anyone's parts
    assert "Set-Cookie" not in response.headers


def counts(user) -> dict:
    """Everything a Log In or code step writes, to show that nothing was."""
    db.session.expire_all()
    fresh = db.session.get(User, user.id)
    return {
        "audit": db.session.scalar(select(func.count(AuditEvent.id))),
        "codes": db.session.scalar(select(func.count(MfaCode.id))),
        "consumed": db.session.scalar(select(func.count(MfaCode.id)).where(MfaCode.consumed_at.is_not(None))),
        "code_attempts": db.session.scalar(select(func.coalesce(func.sum(MfaCode.attempts), 0))),
        "messages": db.session.scalar(select(func.count(OutboxMessage.id))),
        "password_failures": fresh.failed_password_count,
        "code_failures": fresh.mfa_failed_count,
        "last_login": getattr(fresh, "last_login_at", None),
    }


def email_code(recipient: str) -> str:
    db.session.expire_all()
    body = db.session.scalars(select(OutboxMessage.body_text).where(OutboxMessage.recipient == recipient)
                              .order_by(OutboxMessage.id.desc())).first()
    return re.search(r"\b(\d{6})\b", body).group(1)


def stored_sessions(redis) -> dict[bytes, bytes]:
    """Every key in the test's own Redis (sessions and the store's marker) and its value."""
    from redis import Redis

    client = Redis.from_url(redis.url)
    return {key: client.get(key) for key in client.keys("*")}


@pytest.mark.parametrize("fault", ["stopped", "paused"])
def test_log_in_with_the_session_store_down_or_hung_gets_the_503_page_and_writes_nothing(portal, redis, fault):
    """Log In while Redis is stopped or hung: the 503 page within the timeout, nothing written;
    health checks and the page's stylesheet still answer; Log In works once Redis is back."""
    user = make_user("outage@example.test")
    make_enrollment(user, "email")
    client = portal.test_client()
    assert client.get("/login").status_code == 200
    before = counts(user)

    redis.stop() if fault == "stopped" else redis.pause()
    try:
        response, elapsed = timed(client.post, "/login", data={"email": "outage@example.test", "password": PASSWORD})
        assert_unavailable_page(response, elapsed)
        wrong, elapsed = timed(client.post, "/login", data={"email": "outage@example.test", "password": "wrong"})
        assert_unavailable_page(wrong, elapsed)
        assert counts(user) == before  # no code sent, no failure counted, no audit event

        health, elapsed = timed(client.get, "/healthz")
        assert health.status_code == 200 and elapsed < 0.5  # never waits on the session store
        assert client.get("/static/css/portal.css").status_code == 200
        ready, elapsed = timed(client.get, "/readyz")
        assert ready.status_code == 503 and elapsed < PROMPT
        assert ready.json["checks"] == {"database": "ok", "session_store": "failed"}
    finally:
        redis.start() if fault == "stopped" else redis.resume()

    response = client.post("/login", data={"email": "outage@example.test", "password": PASSWORD})
    assert response.status_code == 303 and response.headers["Location"] == "/login/code"
    assert client.post("/login/code", data={"code": email_code("outage@example.test")}).status_code == 303
    assert "Welcome" in client.get("/").get_data(as_text=True)
    assert client.get("/readyz").json["checks"]["session_store"] == "ok"


def test_a_code_step_while_the_store_hangs_keeps_the_code_and_the_sign_in_for_later(portal, redis):
    """The right code entered while Redis is paused: the 503 page, the code not spent, no
    sign-in recorded; after SIGCONT the same session and the same code finish the Log In."""
    user = make_user("hung@example.test", display_name="Hana Hung")
    make_enrollment(user, "email")
    client = portal.test_client()
    assert client.post("/login", data={"email": "hung@example.test", "password": PASSWORD}).status_code == 303
    code = email_code("hung@example.test")
    before = counts(user)
    stored = stored_sessions(redis)
    assert stored  # the pending Log In is kept in the store

    redis.pause()
    try:
        response, elapsed = timed(client.post, "/login/code", data={"code": code})
        assert_unavailable_page(response, elapsed)
        wrong, elapsed = timed(client.post, "/login/code", data={"code": f"{(int(code) + 1) % 10**6:06d}"})
        assert_unavailable_page(wrong, elapsed)
        swapped, elapsed = timed(client.post, "/login/code", data={"code": code}, headers=CODE_HTMX)
        assert swapped.status_code == 503 and elapsed < PROMPT
        assert "briefly unavailable" in swapped.get_data(as_text=True) and "<html" not in swapped.get_data(as_text=True)
        assert counts(user) == before  # the code unspent and untried, no failure, no login.succeeded
    finally:
        redis.resume()

    assert stored_sessions(redis) == stored  # nothing half-written
    response = client.post("/login/code", data={"code": code})
    assert response.status_code == 303 and response.headers["Location"] == "/"
    assert "Welcome, Hana Hung." in client.get("/").get_data(as_text=True)


def test_a_signed_in_page_during_an_outage_and_after_a_restart_that_lost_the_sessions(portal, redis):
    """Signed in, Redis stops: the 503 page (no name, no menu). Redis restarts empty: the user
    is sent to Log In and told why, once; nothing was written meanwhile."""
    user = make_user("lost@example.test", display_name="Lou Lost")
    client = portal.test_client()
    client.post("/login", data={"email": "lost@example.test", "password": PASSWORD})
    assert "Welcome, Lou Lost." in client.get("/").get_data(as_text=True)
    before = counts(user)

    redis.stop()
    response, elapsed = timed(client.get, "/")
    assert_unavailable_page(response, elapsed)
    assert "Lou Lost" not in response.get_data(as_text=True)
    response, elapsed = timed(client.post, "/account/security/confirm-password", data={"password": PASSWORD})
    assert_unavailable_page(response, elapsed)

    redis.start()  # same port, no persistence: every session is gone
    response = client.get("/")
    assert response.status_code == 303 and response.headers["Location"].startswith("/login")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert SESSIONS_LOST in page
    assert SESSIONS_LOST not in client.get("/login").get_data(as_text=True)  # told once
    assert counts(user) == before

    client.post("/login", data={"email": "lost@example.test", "password": PASSWORD})
    assert "Welcome, Lou Lost." in client.get("/").get_data(as_text=True)


def test_a_session_that_ended_normally_is_not_reported_as_lost(portal, redis):
    """Logging out, or a made-up cookie, while the store kept its sessions: no "lost" message."""
    make_user("normal@example.test")
    client = portal.test_client()
    client.post("/login", data={"email": "normal@example.test", "password": PASSWORD})
    cookie = client.get_cookie(portal.config["SESSION_COOKIE_NAME"]).value
    client.post("/logout")
    client.set_cookie(portal.config["SESSION_COOKIE_NAME"], cookie)  # the ended session's cookie, replayed
    response = client.get("/")
    assert response.status_code == 303
    assert SESSIONS_LOST not in client.get(response.headers["Location"]).get_data(as_text=True)
    other = portal.test_client()
    other.set_cookie(portal.config["SESSION_COOKIE_NAME"], "made-up-session-id")  # not of the form of ours
    assert SESSIONS_LOST not in other.get("/login").get_data(as_text=True)


def test_a_session_that_cannot_be_saved_turns_the_page_into_the_503_page(portal, redis, clock):
    """Redis hangs after the page was made, as the session is written: the 503 page, not a
    redirect or a half-kept step. A hung server still holds the write it was sent and applies it
    on SIGCONT: the session is then wholly the old one or wholly the new one, and works on."""
    pause_now = []

    @portal.after_request
    def hang_redis(response):  # runs before the session is saved
        if pause_now:
            redis.pause()
        return response

    make_user("saving@example.test", display_name="Sal Saving")
    client = portal.test_client()
    client.post("/login", data={"email": "saving@example.test", "password": PASSWORD})
    stored = stored_sessions(redis)
    assert stored
    clock.advance(seconds=90)  # the idle clock is written at most once a minute: this page writes it
    pause_now.append(True)
    try:
        response, elapsed = timed(client.get, "/")
        assert_unavailable_page(response, elapsed)
        assert "Sal Saving" not in response.get_data(as_text=True) and "Location" not in response.headers
    finally:
        pause_now.clear()
        redis.resume()
    after = stored_sessions(redis)
    assert after.keys() == stored.keys()
    decode = portal.session_interface.serializer.decode
    for key, value in after.items():
        if value != stored[key]:  # the whole update landed late: the same session, its idle clock moved on
            old, new = decode(stored[key]), decode(value)
            assert new.keys() == old.keys() and {k: v for k, v in new.items() if k != "seen_at"} == {
                k: v for k, v in old.items() if k != "seen_at"}
    assert "Welcome, Sal Saving." in client.get("/").get_data(as_text=True)


def test_sessions_survive_a_restart_of_a_persistent_redis(make_app, app, tmp_path):
    """With append-only persistence (docs/DEPLOY.md), a Redis restart keeps everyone signed in."""
    redis = OwnRedis(tmp_path, "--appendonly", "yes", "--appendfsync", "always").start()
    try:
        portal = make_app(SESSION_REDIS_URL=redis.url)
        make_user("kept@example.test", display_name="Kim Kept")
        client = portal.test_client()
        client.post("/login", data={"email": "kept@example.test", "password": PASSWORD})
        redis.stop()
        redis.start()
        assert "Welcome, Kim Kept." in client.get("/").get_data(as_text=True)
    finally:
        redis.stop()


def test_readiness_names_each_dependency(make_app, app, tmp_path):
    """/readyz: the session store down is 503; the rate limits' storage down is "degraded" (200),
    since the portal serves on with limits counted in memory."""
    limits = OwnRedis(tmp_path).start()
    sessions = OwnRedis(tmp_path).start()
    try:
        portal = make_app(SESSION_REDIS_URL=sessions.url, RATELIMIT_STORAGE_URI=limits.url)
        client = portal.test_client()
        assert client.get("/readyz").json == {"status": "ready", "checks": {
            "database": "ok", "session_store": "ok", "rate_limit_store": "ok"}}
        limits.stop()
        response = client.get("/readyz")
        assert response.status_code == 200 and response.json["status"] == "degraded"
        assert response.json["checks"]["rate_limit_store"] == "failed"
        sessions.stop()
        response = client.get("/readyz")
        assert response.status_code == 503 and response.json["status"] == "unavailable"
        assert response.json["checks"] == {"database": "ok", "session_store": "failed", "rate_limit_store": "failed"}
    finally:
        limits.stop()
        sessions.stop()


def test_rate_limits_fall_back_to_memory_logged_and_counted(make_app, app, tmp_path, caplog):
    """The limits' Redis stops: Log In still answers (limits in memory), the switch is logged by
    the portal and counted in portal_ratelimit_fallbacks_total, and the limits still bite."""
    from portal import metrics

    limits = OwnRedis(tmp_path).start()
    try:
        portal = make_app(RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI=limits.url,
                          LIMIT_LOGIN_PER_ADDRESS="3 per minute", LIMIT_LOGIN_PER_ACCOUNT="100 per minute")
        make_user("limited@example.test")
        client = portal.test_client()
        before = metrics.RATELIMIT_FALLBACKS._value.get()
        limits.stop()
        statuses = []
        for _ in range(4):
            response, elapsed = timed(client.post, "/login", data={"email": "limited@example.test", "password": "x"})
            statuses.append(response.status_code)
            assert elapsed < PROMPT
        assert statuses == [401, 401, 401, 429]  # counted in memory: the limit still bites
        assert metrics.RATELIMIT_FALLBACKS._value.get() == before + 1
        assert any(record.name == "portal" and "counting in this process's memory" in record.getMessage()
                   for record in caplog.records)
    finally:
        limits.stop()
        from portal.extensions import limiter

        limiter._storage_dead = False  # the limiter is one object per process: the next test starts afresh
