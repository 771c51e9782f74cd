"""Account setup by invitation: the only way a practice user's email becomes verified."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal.accounts import invitations
from portal.clock import now as utcnow
from portal.extensions import db
from portal.models import Invitation, User
from tests.factories import PASSWORD, make_user

NEW_PASSWORD = "a long enough passphrase"


@pytest.fixture
def admin(client, auth):
    admin = make_user("admin@example.test", role="practice_admin", display_name="Ada Admin")
    auth.login("admin@example.test", PASSWORD)
    return admin


def invite(client, email="new.person@example.test", role="staff", name="New Person"):
    return client.post("/practice/invitations", data={"email": email, "display_name": name, "role": role})


def test_invitation_round_trip(app, client, auth, outbox, admin):
    """Can an admin invite someone who then sets a password, has a verified email and logs in?"""
    response = invite(client)
    assert response.status_code == 303
    assert "Invitation sent to new.person@example.test." in client.get("/practice/users").get_data(as_text=True)
    message = outbox.last("new.person@example.test")
    assert "Ada Admin has invited you to" in message.body_text
    assert "expires in 48 hours" in message.body_text
    link = outbox.link("new.person@example.test")
    assert link.startswith("/invitations/")
    assert "http://portal.test/invitations/" in message.body_text  # built from PUBLIC_BASE_URL
    auth.logout()

    page = client.get(link)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "new.person@example.test" in html and "Set up your account" in html
    assert "MFA" not in html and "Choose MFA Device" not in html  # no MFA during account setup

    response = client.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    user = db.session.scalar(select(User).where(User.email == "new.person@example.test"))
    assert user.email_verified_at is not None
    assert user.role == "staff" and user.practice_id == admin.practice_id
    assert auth.login("new.person@example.test", NEW_PASSWORD).status_code == 303
    assert "Welcome, New Person." in client.get("/").get_data(as_text=True)


def test_reused_link_is_refused(client, auth, outbox, admin):
    """Can an invitation link set a password a second time?"""
    invite(client)
    link = outbox.link("new.person@example.test")
    auth.logout()
    client.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    again = client.post(link, data={"password": "another long passphrase", "confirm": "another long passphrase"})
    assert again.status_code == 400
    assert "already been used" in again.get_data(as_text=True)
    assert client.get(link).status_code == 400
    assert auth.login("new.person@example.test", "another long passphrase").status_code == 401


def test_expired_link_is_refused(app, client, outbox, admin):
    """Does a link older than 48 hours still work?"""
    invitations.invite(admin=admin, email="late@example.test", display_name="Late", role="clinician",
                       now=utcnow() - timedelta(hours=48, seconds=1))
    link = outbox.link("late@example.test")
    response = client.get(link)
    assert response.status_code == 400
    assert "expired" in response.get_data(as_text=True)
    response = client.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 400
    assert db.session.scalar(select(func.count(User.id)).where(User.email == "late@example.test")) == 0


def test_link_just_inside_48_hours_works(app, client, outbox, admin):
    """Is the 48-hour window honoured to the minute?"""
    invitations.invite(admin=admin, email="ontime@example.test", display_name="On Time", role="clinician",
                       now=utcnow() - timedelta(hours=47, minutes=59))
    assert client.get(outbox.link("ontime@example.test")).status_code == 200


@pytest.mark.parametrize("mangle", [
    lambda link: link[:-3] + ("abc" if not link.endswith("abc") else "xyz"),
    lambda link: link.replace("/invitations/", "/invitations/x"),
    lambda link: "/invitations/not-a-token",
    lambda link: "/invitations/" + "A" * 5000,
])
def test_tampered_links_are_refused(client, outbox, admin, mangle):
    """Does a link altered by hand, or made up, open anything?"""
    invite(client)
    bad = mangle(outbox.link("new.person@example.test"))
    assert client.get(bad).status_code in (400, 404)
    response = client.post(bad, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code in (400, 404)
    assert db.session.scalar(select(func.count(User.id)).where(User.email == "new.person@example.test")) == 0


def test_reset_link_cannot_be_used_as_invitation(app, client, outbox, admin):
    """Is a token signed for another purpose refused?"""
    from portal.accounts import tokens

    invite(client)
    record = db.session.scalar(select(Invitation))
    forged = tokens.sign("password-reset", record.id, "whatever")
    assert client.get(f"/invitations/{forged}").status_code == 400


def test_new_invitation_replaces_the_old_link(client, outbox, admin):
    """After a second invitation to the same person, does the first link stop working?"""
    invite(client)
    first = outbox.link("new.person@example.test")
    invite(client)
    second = outbox.link("new.person@example.test")
    assert first != second
    assert client.get(first).status_code == 400
    assert client.get(second).status_code == 200


def test_short_password_is_refused_with_a_clear_message(client, auth, outbox, admin):
    """Does a password under 12 characters get explained, and the link stay usable?"""
    invite(client)
    link = outbox.link("new.person@example.test")
    response = client.post(link, data={"password": "short pass", "confirm": "short pass"})
    assert response.status_code == 400
    assert "Use at least 12 characters." in response.get_data(as_text=True)
    assert 'aria-describedby="password-hint password-error"' in response.get_data(as_text=True)
    ok = client.post(link, data={"password": "twelve chars", "confirm": "twelve chars"})
    assert ok.status_code == 303  # exactly 12, no composition rules


def test_mismatched_passwords_are_refused(client, outbox, admin):
    invite(client)
    link = outbox.link("new.person@example.test")
    response = client.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD + "x"})
    assert response.status_code == 400
    assert "The two passwords differ." in response.get_data(as_text=True)


def test_inviting_an_existing_user_is_refused(client, admin):
    """Does inviting an address that already has an account say so, and send nothing?"""
    make_user("taken@example.test")
    response = invite(client, email="Taken@Example.test")
    assert response.status_code == 400
    assert "already exists" in response.get_data(as_text=True)


@pytest.mark.parametrize("data", [
    {"email": "not-an-email", "display_name": "X", "role": "staff"},
    {"email": "x@example.test", "display_name": "", "role": "staff"},
    {"email": "x@example.test", "display_name": "X", "role": "support"},
    {"email": "x@example.test", "display_name": "X", "role": "superuser"},
    {},
])
def test_bad_invitation_input_gets_400_and_saves_nothing(client, outbox, admin, data):
    """Can an admin invite a support user, a bad role or a malformed address?"""
    response = client.post("/practice/invitations", data=data)
    assert response.status_code == 400
    assert db.session.scalar(select(func.count(Invitation.id))) == 0
    assert outbox.messages() == []
