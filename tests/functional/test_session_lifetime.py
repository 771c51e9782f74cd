"""Session lifetime on a shared clinical workstation: idle and absolute timeouts, log out everywhere."""

from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent
from tests.factories import PASSWORD, make_enrollment, make_user


def test_idle_session_ends_after_thirty_minutes(client, auth, clock):
    """Left alone for 30 minutes, does the session end on the server side?"""
    make_user("idle@example.test")
    auth.login("idle@example.test", PASSWORD)
    clock.advance(minutes=29)
    assert client.get("/").status_code == 200  # activity keeps it alive
    clock.advance(minutes=29)
    assert client.get("/").status_code == 200
    clock.advance(minutes=30, seconds=1)
    response = client.get("/account/security")
    assert response.status_code == 303
    assert response.headers["Location"] == "/login?next=/account/security"
    assert "logged out after 30 minutes without activity" in client.get("/login").get_data(as_text=True)
    assert client.get("/").status_code == 303
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.event_type == "session.expired"))
    assert '"reason":"idle"' in event.detail


def test_log_in_sent_from_a_tab_left_open_past_the_idle_timeout_logs_in(client, auth, clock):
    """The session idled out but is still in the store: does Log In, sent again, sign in (not
    take the old session for a live one and send the form away), and say what happened?"""
    make_user("again@example.test", display_name="Alex Again")
    auth.login("again@example.test", PASSWORD)
    clock.advance(minutes=30, seconds=1)
    page = client.get("/login")
    assert page.status_code == 200  # the Log In page, not a redirect to the dashboard
    assert "logged out after 30 minutes without activity" in page.get_data(as_text=True)
    clock.advance(minutes=1)
    auth.login("again@example.test", PASSWORD)
    clock.advance(minutes=30, seconds=1)
    response = auth.login("again@example.test", PASSWORD)
    assert response.status_code == 303 and response.headers["Location"] == "/"
    dashboard = client.get("/")
    assert dashboard.status_code == 200 and "Welcome, Alex Again." in dashboard.get_data(as_text=True)
    reasons = db.session.scalars(select(AuditEvent.detail).where(AuditEvent.event_type == "session.expired")).all()
    assert reasons == ['{"reason":"idle"}'] * 2


def test_session_ends_after_twelve_hours_however_active(client, auth, clock):
    make_user("long@example.test")
    auth.login("long@example.test", PASSWORD)
    for _ in range(24):
        clock.advance(minutes=29)
        assert client.get("/").status_code == 200
    clock.advance(minutes=25)  # 12 h 1 min after Log In
    assert client.get("/").status_code == 303


def test_htmx_request_after_timeout_gets_hx_redirect(client, auth, clock):
    make_user("htmx-idle@example.test")
    auth.login("htmx-idle@example.test", PASSWORD)
    clock.advance(minutes=31)
    response = client.get("/account/security", headers={"HX-Request": "true"})
    assert response.status_code == 401 and response.headers["HX-Redirect"].startswith("/login")


def test_log_out_everywhere_ends_every_session(app, client, auth, clock):
    """Does "Log out everywhere" end the sessions on other devices too?"""
    make_user("shared@example.test")
    auth.login("shared@example.test", PASSWORD)
    other = app.test_client()
    other.post("/login", data={"email": "shared@example.test", "password": PASSWORD})
    assert other.get("/").status_code == 200
    assert "Log out everywhere" in client.get("/account/security").get_data(as_text=True)
    response = client.post("/logout/everywhere")
    assert response.headers["Location"] == "/login?logged_out=everywhere"
    assert client.get("/").status_code == 303
    assert other.get("/").status_code == 303
    assert "logged out on every device" in client.get("/login?logged_out=everywhere").get_data(as_text=True)


def test_mfa_change_ends_other_sessions_but_keeps_this_one(app, client, auth, clock):
    """After switching method, is the attacker's parallel session gone while mine stays?"""
    make_user("switcher@example.test")
    auth.login("switcher@example.test", PASSWORD)
    other = app.test_client()
    other.post("/login", data={"email": "switcher@example.test", "password": PASSWORD})
    client.post("/account/security/confirm-password", data={"password": PASSWORD})
    client.post("/account/security/device", data={"device": "email"})
    assert client.get("/").status_code == 200
    assert other.get("/").status_code == 303


def test_pending_login_of_an_ended_account_dies(app, client, auth, outbox, clock):
    """A half-finished Log In: does it survive the user's "log out everywhere" elsewhere?"""
    user = make_user("pending@example.test")
    make_enrollment(user, "email")
    auth.login("pending@example.test", PASSWORD)
    from portal.accounts.users import end_all_sessions

    end_all_sessions(user)
    db.session.commit()
    import re

    code = re.search(r"\b(\d{6})\b", outbox.last("pending@example.test", "email").body_text).group(1)
    response = auth.enter_code(code)
    assert response.headers["Location"] == "/login"
    assert client.get("/").status_code == 303
