"""Account setup by invitation: the only way a practice user's email becomes verified."""

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from portal.accounts import invitations
from portal.clock import now as utcnow
from portal.extensions import db
from portal.models import Invitation, User
from tests.conftest import without_csrf_tokens
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


HAS_ACCOUNT = {
    # case: the address of an existing account
    "in this practice": "colleague@example.test",
    "in another practice": "stranger@example.test",
    "on support staff": "helper@portal.test",
    "inactive": "gone@example.test",
}


def answer(client, response, address: str) -> tuple:
    """What the admin sees of an invitation: the response and the page it leads to, with the
    address taken out of the flash and the open invitations (not out of the member list: the
    admin knows their own practice's people), and the CSRF token and invitation ids out of the page."""
    page = client.get(response.headers["Location"])
    html = page.get_data(as_text=True).replace(f"Invitation sent to {address}.", "Invitation sent to EMAIL.")
    members, heading, pending = html.partition("<h2>Open invitations</h2>")
    html = without_csrf_tokens(members + heading + pending.replace(address, "EMAIL"))
    html = re.sub(r"/practice/invitations/\d+/", "/practice/invitations/ID/", html)  # resend and revoke
    return (response.status_code, response.headers["Location"], sorted(response.headers.keys()),
            response.get_data(as_text=True), page.status_code, html)


def test_inviting_an_address_that_has_an_account_looks_like_any_invitation(app, client, outbox, clock, admin):
    """Does an invitation to an address with an account (in this practice, another, support
    staff, inactive) get exactly the answer and open-invitation row a new address gets, while
    the account's owner gets a short notice without any link?"""
    make_user("colleague@example.test", practice=admin.practice, display_name="Cole League")
    make_user("stranger@example.test", display_name="Stan Stranger")
    make_user("helper@portal.test", role="support", display_name="Sasha Support")
    make_user("gone@example.test", practice=admin.practice, display_name="Gail Gone", active=False)
    users_before = db.session.scalar(select(func.count(User.id)))
    answers = {}
    for case, address in [("new", "new.person@example.test"), *HAS_ACCOUNT.items()]:
        answers[case] = answer(client, invite(client, email=address), address)
        # Revoked behind the page's back, so every case starts from an empty list.
        db.session.execute(update(Invitation).values(revoked_at=clock.now()))
        db.session.commit()
    first = answers.pop("new")
    assert first[0] == 303 and "Invitation sent to EMAIL." in first[-1] and "<td>EMAIL</td>" in first[-1]
    for case, seen in answers.items():
        assert seen == first, case
    assert db.session.scalar(select(func.count(User.id))) == users_before
    assert "/invitations/" in outbox.last("new.person@example.test").body_text
    practice = admin.practice.name
    for address in HAS_ACCOUNT.values():
        (message,) = outbox.messages(address)
        assert message.subject == "Someone tried to invite you to Practice Portal"
        assert f"Ada Admin of {practice} tried to invite this email address" in message.body_text
        assert f"Ada Admin of {practice} tried to invite this email address" in message.body_html
        for body in (message.body_text, message.body_html):
            assert "http" not in body and "/invitations/" not in body  # no link


def test_an_address_with_an_account_in_another_spelling_gets_the_notice(client, outbox, admin):
    """Does an invitation to an existing address typed in another case reach its owner as the notice?"""
    make_user("stranger@example.test", display_name="Stan Stranger")
    response = invite(client, email="Stranger@EXAMPLE.test")
    assert response.status_code == 303
    assert "Invitation sent to Stranger@EXAMPLE.test." in client.get("/practice/users").get_data(as_text=True)
    assert outbox.last("stranger@example.test").subject == "Someone tried to invite you to Practice Portal"


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
