"""Log In, logout and the session cookie, as a browser and an attacker see them."""

import re

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import ServerSession
from tests.conftest import session_cookie, without_csrf_tokens
from tests.factories import PASSWORD, make_user


def body_without_tokens(response) -> str:
    return without_csrf_tokens(response.get_data(as_text=True))


def test_login_success_lands_on_dashboard(client, auth):
    """Does a correct email and password open the dashboard?"""
    user = make_user("casey@example.test", display_name="Casey Clinician")
    response = auth.login("casey@example.test", PASSWORD)
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    page = client.get("/")
    assert page.status_code == 200
    assert "Dashboard" in page.get_data(as_text=True)
    assert "Welcome, Casey Clinician." in page.get_data(as_text=True)
    assert user.practice.name in page.get_data(as_text=True)


def test_login_page_is_titled_and_buttoned_log_in(client):
    """Does the page carry the specification's words?"""
    html = client.get("/login").get_data(as_text=True)
    assert "<h1>Log In</h1>" in html
    assert 'value="Log In"' in html
    assert 'autocomplete="current-password"' in html


def test_email_is_case_insensitive_and_trimmed(client, auth):
    """Can a user log in with their email in another case and with spaces?"""
    make_user("mixed@example.test")
    assert auth.login("  Mixed@Example.TEST ", PASSWORD).status_code == 303


def test_wrong_password_and_unknown_email_look_the_same(client, auth):
    """Can an attacker tell an unknown email from a wrong password?"""
    make_user("known@example.test")
    wrong = auth.login("known@example.test", "not the password at all")
    unknown = auth.login("nobody@example.test", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert body_without_tokens(wrong).replace("known@", "X@") == body_without_tokens(unknown).replace("nobody@", "X@")
    assert "The email or password is incorrect" in wrong.get_data(as_text=True)
    assert client.get("/").status_code == 303  # still not logged in


def test_inactive_user_is_refused_with_the_same_message(client, auth):
    """Does a deactivated account get in, or say that it is deactivated?"""
    make_user("gone@example.test", active=False)
    response = auth.login("gone@example.test", PASSWORD)
    assert response.status_code == 401
    assert "The email or password is incorrect" in response.get_data(as_text=True)
    assert "inactive" not in response.get_data(as_text=True).lower()
    assert client.get("/").status_code == 303


@pytest.mark.parametrize("data", [{}, {"email": "a@example.test"}, {"password": "x"}, {"email": "", "password": ""}])
def test_missing_fields_get_a_clear_400(client, data):
    """Does a half-filled form get a message instead of an error page?"""
    response = client.post("/login", data=data)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Enter your email address." in html or "Enter your password." in html


def test_dashboard_needs_login(client):
    """Does an anonymous visitor get sent to Log In, keeping where they were going?"""
    response = client.get("/account/security")
    assert response.status_code == 303
    assert response.headers["Location"] == "/login?next=/account/security"


def test_next_returns_to_the_requested_page(client, auth):
    """After Log In, does the user reach the page they first asked for?"""
    make_user("next@example.test")
    response = client.post("/login?next=/account/security", data={"email": "next@example.test", "password": PASSWORD})
    assert response.headers["Location"] == "/account/security"


@pytest.mark.parametrize("target", ["https://evil.test/", "//evil.test/x", "/\\evil.test", "http:/evil.test",
                                    "javascript:alert(1)", "/%0d%0aSet-Cookie:x"])
def test_open_redirect_next_values_are_ignored(client, auth, target):
    """Can a crafted link send a freshly logged-in user to another site?"""
    make_user("redirect@example.test")
    response = client.post("/login", query_string={"next": target},
                           data={"email": "redirect@example.test", "password": PASSWORD})
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith("/") and not location.startswith("//")
    assert "evil" not in location


def test_unauthenticated_htmx_request_gets_hx_redirect_not_content(client):
    """Does an HTMX request without a session get content, or a redirect to Log In?"""
    response = client.get("/account/security", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login")
    assert response.get_data(as_text=True) == ""


def test_logout_is_post_only(client, auth):
    """Can a link or image tag log a user out?"""
    make_user("out@example.test")
    auth.login("out@example.test", PASSWORD)
    assert client.get("/logout").status_code == 405
    assert client.get("/").status_code == 200


def test_logout_ends_the_server_session_and_old_cookie_fails(app, client, auth):
    """After Log Out, does replaying the old session cookie get back in?"""
    make_user("replay@example.test")
    auth.login("replay@example.test", PASSWORD)
    old_sid = session_cookie(client, app)
    assert client.get("/").status_code == 200
    response = auth.logout()
    assert response.status_code == 303
    assert response.headers["Location"] == "/login?logged_out=1"
    assert "Clear-Site-Data" in response.headers
    if not app.config.get("SESSION_REDIS_URL"):
        assert db.session.scalar(select(ServerSession).where(ServerSession.session_id.contains(old_sid))) is None
    attacker = app.test_client()
    attacker.set_cookie(app.config["SESSION_COOKIE_NAME"], old_sid)
    assert attacker.get("/").status_code == 303
    assert "You have been logged out." in client.get("/login?logged_out=1").get_data(as_text=True)


def test_session_id_changes_at_login(app, client, auth):
    """Is a session id planted before Log In still valid after it (session fixation)?"""
    make_user("fixation@example.test")
    client.get("/login")
    client.post("/login", data={"email": "fixation@example.test", "password": "wrong password here"})
    before = session_cookie(client, app)
    auth.login("fixation@example.test", PASSWORD)
    after = session_cookie(client, app)
    assert after and after != before


def test_session_cookie_is_opaque_httponly_and_lax(app, client, auth):
    """Does the cookie hold only a random id, flagged HttpOnly and SameSite=Lax?"""
    user = make_user("cookie@example.test")
    response = auth.login("cookie@example.test", PASSWORD)
    header = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(app.config["SESSION_COOKIE_NAME"]))
    assert "HttpOnly" in header
    assert "SameSite=Lax" in header
    assert "Expires" not in header  # not persistent: gone when the browser closes
    value = session_cookie(client, app)
    assert re.fullmatch(r"[A-Za-z0-9_-]{40,}", value)
    assert str(user.id) + ":" not in value and "cookie@" not in value


def test_security_headers_on_login_page(client):
    """Is the login page kept out of caches and frames?"""
    response = client.get("/login")
    assert response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_navigation_menu_holds_account_settings_and_log_out(client, auth):
    """Does the top-right menu show the user's name, Account Settings and Log Out?"""
    make_user("menu@example.test", display_name="Morgan Menu")
    auth.login("menu@example.test", PASSWORD)
    html = client.get("/").get_data(as_text=True)
    menu = html[html.index('class="user-menu"'):html.index("</details>")]
    assert "Morgan Menu" in menu
    assert ">Account Settings</a>" in menu
    assert "Log Out" in menu and 'method="post"' in menu


def test_account_settings_opens_the_security_tab(client, auth):
    """Does Account Settings lead to a Security tab?"""
    make_user("settings@example.test")
    auth.login("settings@example.test", PASSWORD)
    response = client.get("/account/", follow_redirects=True)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<h1>Account Settings</h1>" in html
    assert ">Security</a>" in html


def test_rehash_on_login_when_parameters_change(app, make_app, auth, client):
    """When argon2 parameters are raised, is the stored hash upgraded at the next Log In?"""
    user = make_user("rehash@example.test")
    old_hash = user.password_hash
    assert "m=8,t=1" in old_hash
    stronger = make_app(ARGON2_TIME_COST=2, ARGON2_MEMORY_COST=16)
    response = stronger.test_client().post("/login", data={"email": "rehash@example.test", "password": PASSWORD})
    assert response.status_code == 303
    db.session.expire_all()
    new_hash = db.session.get(type(user), user.id).password_hash
    assert new_hash != old_hash and "m=16,t=2" in new_hash
    assert new_hash.startswith("$argon2id$")
