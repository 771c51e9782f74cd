"""Words follow configuration: every lifetime a person reads comes from the configured value."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.factories import PASSWORD, make_enrollment, make_user
from tests.functional.mfa_helpers import HTMX, confirm_password, last_code

LONGER = dict(
    MFA_CODE_TTL=timedelta(minutes=10),
    MFA_ENROLLMENT_TTL=timedelta(minutes=20),
    SUPPORT_CONFIRM_TTL=timedelta(minutes=30),
    PASSWORD_RESET_MAX_AGE=timedelta(hours=2),
    INVITATION_MAX_AGE=timedelta(hours=72),
    MFA_REAUTH_TTL=timedelta(minutes=12),
    MFA_PENDING_LOGIN_TTL=timedelta(minutes=15),
)


@pytest.fixture
def longer(app, make_app):
    return make_app(**LONGER).test_client()


def test_code_lifetime_on_the_code_page_in_the_message_and_when_expired(longer, outbox, clock):
    """With codes living ten minutes, do the page, the email and the expiry message all say so?"""
    user = make_user("ten@example.test")
    make_enrollment(user, "email")
    longer.post("/login", data={"email": "ten@example.test", "password": PASSWORD})
    page = longer.get("/login/code").get_data(as_text=True)
    assert "The code is valid for ten minutes." in page and "five minutes" not in page
    code = last_code(outbox, "ten@example.test", "email")
    assert "expires in 10 minutes" in outbox.last("ten@example.test", "email").body_text
    clock.advance(minutes=10, seconds=1)
    expired = longer.post("/login/code", data={"code": code}).get_data(as_text=True)
    assert "codes are valid for ten minutes" in expired


def test_setup_and_reentry_lifetimes_on_the_security_tab(longer, clock):
    """Do the authenticator set-up and the password confirmation state their configured lifetimes?"""
    make_user("setup@example.test")
    longer.post("/login", data={"email": "setup@example.test", "password": PASSWORD})
    confirm_password(longer, PASSWORD)
    page = longer.post("/account/security/device", data={"device": "totp"}, headers=HTMX).get_data(as_text=True)
    assert "This setup is valid for 20 minutes." in page
    assert "stays valid for about 12 more minutes" in page
    clock.advance(minutes=11)
    response = longer.post("/account/security/verify", data={"code": "123456"}, headers=HTMX)
    assert response.status_code == 400
    confirm_password(longer, PASSWORD)
    clock.advance(minutes=10)
    response = longer.post("/account/security/verify", data={"code": "123456"}, headers=HTMX)
    assert "longer than 20 minutes" in response.get_data(as_text=True)


def test_link_and_support_lifetimes(longer, auth, clock):
    """Do the reset, invitation and support confirmation pages state their configured lifetimes?"""
    sent = longer.post("/forgot-password", data={"email": "nobody@example.test"}).get_data(as_text=True)
    assert "expires in two hours" in sent
    make_user("admin@example.test", role="practice_admin")
    longer.post("/login", data={"email": "admin@example.test", "password": PASSWORD})
    assert "expires in 72 hours" in longer.get("/practice/users").get_data(as_text=True)
    longer.post("/logout")
    support = make_user("support@portal.test", role="support")
    secret = make_enrollment(support, "totp")
    import pyotp

    longer.post("/login", data={"email": "support@portal.test", "password": PASSWORD})
    longer.post("/login/code", data={"code": pyotp.TOTP(secret).at(clock.now())})
    assert "The confirmation lasts thirty minutes." in longer.get("/support/confirm").get_data(as_text=True)
