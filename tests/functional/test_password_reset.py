"""Forgot password, end to end through the dev outbox."""

from datetime import timedelta

from sqlalchemy import select

from portal.accounts import password_reset
from portal.clock import now as utcnow
from portal.extensions import db
from portal.models import User
from tests.factories import PASSWORD, make_user

NEW_PASSWORD = "a brand new passphrase"
GENERIC = "If an account exists for that address, we have emailed it a link"


def test_forgot_password_end_to_end(app, client, auth, outbox):
    """Can a user who forgot their password set a new one from the emailed link and log in?"""
    make_user("forgetful@example.test")
    response = client.post("/forgot-password", data={"email": "Forgetful@example.test"})
    assert response.status_code == 200
    assert GENERIC in response.get_data(as_text=True)
    message = outbox.last("forgetful@example.test")
    assert "expires in 60 minutes" in message.body_text
    assert "If this wasn't you" in message.body_text
    link = outbox.link("forgetful@example.test")
    assert client.get(link).status_code == 200
    response = client.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert client.get("/").status_code == 303  # a reset never logs the user in
    assert auth.login("forgetful@example.test", PASSWORD).status_code == 401
    assert auth.login("forgetful@example.test", NEW_PASSWORD).status_code == 303


def test_unknown_email_gets_the_same_answer_and_no_email(client, outbox):
    """Can the form be used to find out who has an account?"""
    make_user("real@example.test")
    known = client.post("/forgot-password", data={"email": "real@example.test"})
    unknown = client.post("/forgot-password", data={"email": "ghost@example.test"})
    assert known.status_code == unknown.status_code == 200
    assert known.get_data(as_text=True) == unknown.get_data(as_text=True)
    assert [m.recipient for m in outbox.messages()] == ["real@example.test"]


def test_inactive_account_gets_no_email(client, outbox):
    make_user("inactive@example.test", active=False)
    response = client.post("/forgot-password", data={"email": "inactive@example.test"})
    assert GENERIC in response.get_data(as_text=True)
    assert outbox.messages() == []


def test_reset_link_is_single_use(client, outbox):
    """Can a reset link be used twice?"""
    make_user("once@example.test")
    client.post("/forgot-password", data={"email": "once@example.test"})
    link = outbox.link("once@example.test")
    client.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    again = client.post(link, data={"password": "attacker passphrase", "confirm": "attacker passphrase"})
    assert again.status_code == 400
    assert "already been used" in again.get_data(as_text=True)


def test_reset_link_expires_after_an_hour(app, client, outbox):
    """Does a link older than one hour still work?"""
    make_user("slow@example.test")
    password_reset.request_reset("slow@example.test", now=utcnow() - timedelta(hours=1, seconds=1))
    link = outbox.link("slow@example.test")
    response = client.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 400
    assert "expired" in response.get_data(as_text=True)


def test_newer_reset_link_voids_the_older(client, outbox):
    make_user("twice@example.test")
    client.post("/forgot-password", data={"email": "twice@example.test"})
    first = outbox.link("twice@example.test")
    client.post("/forgot-password", data={"email": "twice@example.test"})
    second = outbox.link("twice@example.test")
    assert client.get(first).status_code == 400
    assert client.get(second).status_code == 200


def test_reset_signs_out_every_other_session(app, client, auth, outbox):
    """After a reset, is a session the attacker already had ended?"""
    make_user("victim@example.test")
    other = app.test_client()
    other.post("/login", data={"email": "victim@example.test", "password": PASSWORD})
    assert other.get("/").status_code == 200
    client.post("/forgot-password", data={"email": "victim@example.test"})
    client.post(outbox.link("victim@example.test"), data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert other.get("/").status_code == 303
    assert other.get("/").headers["Location"].startswith("/login")


def test_links_ignore_the_host_header(client, outbox):
    """Can a spoofed Host header make the portal email a link to another site?"""
    make_user("host@example.test")
    client.post("/forgot-password", data={"email": "host@example.test"}, headers={"Host": "evil.test"})
    body = outbox.last("host@example.test").body_text
    assert "evil.test" not in body
    assert "http://portal.test/reset-password/" in body


def test_weak_new_password_is_refused(client, outbox):
    user = make_user("weak@example.test")
    old_hash = user.password_hash
    client.post("/forgot-password", data={"email": "weak@example.test"})
    link = outbox.link("weak@example.test")
    response = client.post(link, data={"password": "short", "confirm": "short"})
    assert response.status_code == 400
    assert "Use at least 12 characters." in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.scalar(select(User.password_hash).where(User.id == user.id)) == old_hash
    assert client.get(link).status_code == 200  # the link is still usable
