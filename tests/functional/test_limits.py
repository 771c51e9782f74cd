"""Abuse resistance: account locks, request rate limits, and their 429 answers."""

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, User
from tests.factories import PASSWORD, make_enrollment, make_user
from tests.functional.mfa_helpers import totp_now

GENERIC = "The email or password is incorrect"


def test_ten_failed_passwords_lock_the_account_with_the_same_message(app, client, auth, outbox, clock):
    """After 10 wrong passwords, is even the right one refused for 15 minutes, without saying why?"""
    user = make_user("target@example.test")
    for _ in range(9):
        auth.login("target@example.test", "wrong password guess")
    assert outbox.messages("target@example.test") == []
    auth.login("target@example.test", "wrong password guess", headers={"User-Agent": "GuessBot/2"})
    notice = outbox.last("target@example.test", "email")
    assert "locked for 15 minutes" in notice.body_text and "GuessBot/2" in notice.body_text
    assert "127.0.0.1" in notice.body_text

    locked = auth.login("target@example.test", PASSWORD)
    assert locked.status_code == 401 and GENERIC in locked.get_data(as_text=True)
    assert client.get("/").status_code == 303
    unknown = auth.login("nobody@example.test", PASSWORD)
    assert unknown.status_code == locked.status_code

    clock.advance(minutes=15, seconds=1)
    assert auth.login("target@example.test", PASSWORD).status_code == 303
    db.session.expire_all()
    assert db.session.get(User, user.id).failed_password_count == 0
    assert len(outbox.messages("target@example.test")) == 1  # emailed once
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.event_type == "login.locked")) is not None


def test_success_resets_the_password_counter(client, auth, clock):
    user = make_user("reset@example.test")
    for _ in range(9):
        auth.login("reset@example.test", "wrong password guess")
    assert auth.login("reset@example.test", PASSWORD).status_code == 303
    auth.logout()
    for _ in range(9):
        auth.login("reset@example.test", "wrong password guess")
    assert auth.login("reset@example.test", PASSWORD).status_code == 303
    assert user.id


def test_code_lock_emails_the_user_and_gives_429_with_retry_after(client, auth, outbox, clock):
    """Ten wrong codes across resends: is the account locked, the user told, and a 429 sent?"""
    user = make_user("codes@example.test")
    make_enrollment(user, "email")
    auth.login("codes@example.test", PASSWORD)
    responses = []
    for i in range(10):
        if i and i % 4 == 0:
            clock.advance(seconds=31)
            client.post("/login/code/resend")
        responses.append(auth.enter_code("999999"))
    last = responses[-1]
    assert last.status_code == 429
    assert int(last.headers["Retry-After"]) > 0
    assert "Too many incorrect codes" in last.get_data(as_text=True)
    notice = outbox.last("codes@example.test", "email")
    assert "verification codes" in notice.body_text and "locked" in notice.subject


@pytest.fixture
def limited(make_app, app):
    """The app with Flask-Limiter on and small limits, in memory."""
    return make_app(RATELIMIT_ENABLED=True, LIMIT_LOGIN_PER_ADDRESS="5 per minute",
                    LIMIT_LOGIN_PER_ACCOUNT="3 per minute", LIMIT_RESET_PER_ADDRESS="2 per minute",
                    LIMIT_RESET_PER_ACCOUNT="5 per hour", RATELIMIT_STORAGE_URI="memory://")


def test_login_is_limited_per_account(limited):
    """Does one account stop answering after a burst, whoever asks?"""
    make_user("burst@example.test")
    client = limited.test_client()
    statuses = [client.post("/login", data={"email": "burst@example.test", "password": "guess guess guess"}).status_code
                for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    response = client.post("/login", data={"email": "burst@example.test", "password": PASSWORD})
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert "Too many attempts" in response.get_data(as_text=True)
    # Other accounts from the same address still work (until the address limit).
    make_user("other@example.test")
    assert client.post("/login", data={"email": "other@example.test", "password": PASSWORD}).status_code == 303


def test_login_is_limited_per_address(limited):
    client = limited.test_client()
    statuses = [client.post("/login", data={"email": f"u{i}@example.test", "password": "guess guess guess"}).status_code
                for i in range(6)]
    assert statuses[:5] == [401] * 5 and statuses[5] == 429
    assert client.get("/login").status_code == 200  # reading the page is not limited


def test_429_for_htmx_is_a_fragment(limited):
    client = limited.test_client()
    for i in range(2):
        client.post("/forgot-password", data={"email": f"x{i}@example.test"})
    response = client.post("/forgot-password", data={"email": "x9@example.test"}, headers={"HX-Request": "true"})
    assert response.status_code == 429
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<section class="card narrow error-page" id="error"')
    assert "Retry-After" in response.headers


def test_limits_are_shared_through_redis(make_app, app):
    """With RATELIMIT_STORAGE_URI=redis://, does a limit hit on one instance hold on another?"""
    import uuid

    from tests.conftest import redis_url_or_skip

    url = redis_url_or_skip()
    prefix = f"portal-test-{uuid.uuid4().hex[:8]}"
    settings = dict(RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI=url, RATELIMIT_KEY_PREFIX=prefix,
                    LIMIT_LOGIN_PER_ACCOUNT="2 per minute")
    a, b = make_app(**settings), make_app(**settings)
    make_user("shared@example.test")
    for _ in range(2):
        a.test_client().post("/login", data={"email": "shared@example.test", "password": "guess guess guess"})
    response = b.test_client().post("/login", data={"email": "shared@example.test", "password": PASSWORD})
    assert response.status_code == 429


def test_redis_down_falls_back_to_memory_limits_and_database_locks(make_app, app, clock):
    """With the limit store unreachable, is login still limited (never left open, never a 500)?"""
    from tests.smtp_server import free_port

    down = make_app(RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{free_port()}/0",
                    LIMIT_LOGIN_PER_ACCOUNT="3 per minute")
    make_user("fallback@example.test")
    client = down.test_client()
    statuses = [client.post("/login", data={"email": "fallback@example.test", "password": "guess guess guess"})
                .status_code for _ in range(4)]
    assert 500 not in statuses
    assert statuses[-1] == 429  # the in-memory fallback still limits
    for _ in range(10):
        client.post("/login", data={"email": "fallback@example.test", "password": "guess guess guess"})
    db.session.expire_all()
    locked_user = db.session.scalar(select(User).where(User.email == "fallback@example.test"))
    assert locked_user.failed_password_count >= 3 or locked_user.password_locked_until is not None


def test_security_tab_password_reentry_counts_toward_the_lock(client, auth, clock):
    make_user("reentry@example.test")
    auth.login("reentry@example.test", PASSWORD)
    for _ in range(10):
        client.post("/account/security/confirm-password", data={"password": "not it at all"})
    response = client.post("/account/security/confirm-password", data={"password": PASSWORD})
    assert response.status_code == 429
    assert "Too many incorrect passwords" in response.get_data(as_text=True)


def test_support_confirmation_refuses_a_replayed_login_code(client, auth, clock):
    """Can the code used to log in be reused for the support confirmation (same step)?"""
    user = make_user("support@portal.test", role="support")
    secret = make_enrollment(user, "totp")
    code = totp_now(secret, clock)
    auth.login("support@portal.test", PASSWORD)
    auth.enter_code(code)
    response = client.post("/support/confirm", data={"password": PASSWORD, "code": code})
    assert response.status_code == 400
