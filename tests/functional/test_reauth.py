"""Password re-entry: one set of rules on the Security tab and at support's confirmation."""

from __future__ import annotations

from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, User
from tests.factories import PASSWORD, make_enrollment, make_user
from tests.functional.mfa_helpers import confirm_password, totp_now


def _failures(email: str) -> int:
    db.session.expire_all()
    return db.session.scalar(select(User.failed_password_count).where(User.email == email))


def _support(auth, clock):
    user = make_user("support@portal.test", role="support")
    secret = make_enrollment(user, "totp")
    auth.login_totp("support@portal.test", PASSWORD, secret)
    clock.advance(seconds=30)
    return secret


def test_support_confirmation_resets_the_password_failure_count(client, auth, clock):
    """After wrong passwords, does a correct support confirmation start the count over, as Log In does?"""
    secret = _support(auth, clock)
    for _ in range(3):
        response = client.post("/support/confirm", data={"password": "wrong wrong wrong", "code": "123456"})
        assert response.status_code == 401
    assert _failures("support@portal.test") == 3
    response = client.post("/support/confirm", data={"password": PASSWORD, "code": totp_now(secret, clock)})
    assert response.status_code == 303
    assert _failures("support@portal.test") == 0
    success = db.session.scalar(select(AuditEvent).where(AuditEvent.event_type == "reauth.succeeded"))
    assert success is not None and '"where":"support"' in success.detail


def test_security_tab_and_support_share_one_lock(client, auth, clock):
    """Do wrong passwords on the Security tab lock support's confirmation too, with the same answer?"""
    secret = _support(auth, clock)
    for _ in range(10):
        confirm_password(client, "not it at all")
    response = client.post("/support/confirm", data={"password": PASSWORD, "code": totp_now(secret, clock)})
    assert response.status_code == 429
    assert "Too many incorrect passwords" in response.get_data(as_text=True)
    locked = db.session.scalar(select(AuditEvent).where(AuditEvent.event_type == "reauth.failed")
                               .order_by(AuditEvent.id.desc()))
    assert '"reason":"locked"' in locked.detail and '"where":"support"' in locked.detail
    assert client.get("/support/").headers["Location"].startswith("/support/confirm")


def test_the_attempt_that_locks_says_so(client, auth):
    """Is the tenth wrong password answered with the lock and when to come back?"""
    make_user("tenth@example.test")
    auth.login("tenth@example.test", PASSWORD)
    statuses = [confirm_password(client, "not it at all").status_code for _ in range(10)]
    assert statuses == [401] * 9 + [429]
