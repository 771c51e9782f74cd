"""A practice admin's open invitations: resend (a fresh link; the old one stops working) and
revoke (the link gets the link-problem page), each with and without HTMX, only within the
admin's own practice, rate-limited, audited, and decided once when requests race.

The admin works on the Practice users page; the invited person follows the emailed link.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal.accounts import invitations
from portal.extensions import db
from portal.models import AuditEvent, Invitation, User
from tests.factories import PASSWORD, make_practice, make_user
from tests.functional.parallel import POOL, THREADS, clones, fire
from tests.smtp_server import SMTPServer

USERS = "/practice/users"
HTMX_INVITATIONS = {"HX-Request": "true", "HX-Target": "open-invitations"}
NEW_PASSWORD = "a long enough passphrase"
INVITEE = "new.person@alder.test"


# --- helpers: what the admin and the invited person see ----------------------------------------

def invite(client, email=INVITEE, name="New Person", role="staff"):
    response = client.post("/practice/invitations", data={"email": email, "display_name": name, "role": role})
    assert response.status_code == 303, response.status_code
    return response


def open_rows(html: str) -> dict[str, str]:
    """The open invitations the page lists: {email: the row's HTML}."""
    _, _, section = html.partition("<h2>Open invitations</h2>")
    section = section.split("</section>", 1)[0]
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", section, re.S):
        cells = re.findall(r"<td>([^<]*)</td>", row)
        if len(cells) >= 2:
            rows[cells[1]] = row
    return rows


def action(client, email: str, verb: str) -> str:
    """The address of the Resend or Revoke button beside `email` on the Practice users page."""
    row = open_rows(client.get(USERS).get_data(as_text=True))[email]
    match = re.search(rf'action="(/practice/invitations/\d+/{verb})"', row)
    assert match, row
    return match.group(1)


def accept(client, link: str):
    return client.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})


def events(event_type: str) -> list[AuditEvent]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.event_type == event_type)))


def users_named(email: str) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count(User.id)).where(User.email == email))


def flash_text(html: str) -> str:
    match = re.search(r'<div id="flash"[^>]*>(.*?)</div>', html, re.S)
    return " ".join(re.sub(r"<[^>]+>", "", match.group(1)).split()) if match else ""


@pytest.fixture
def admin(alder_admin):
    """Ada Admin of Alder Clinic, logged in (Birch Surgery is the other practice)."""
    return alder_admin


# --- resend -----------------------------------------------------------------------------------

def test_resend_emails_a_fresh_link_and_the_old_link_stops_working(client, auth, outbox, clock, admin):
    """Does Resend email a new link with the full lifetime, while the first link is refused?"""
    invite(client)
    old_link = outbox.link(INVITEE)
    clock.advance(hours=40)
    auth.login("admin@alder.test", PASSWORD)  # the earlier session has long ended

    response = client.post(action(client, INVITEE, "resend"))
    assert response.status_code == 303 and response.headers["Location"] == USERS
    page = client.get(USERS).get_data(as_text=True)
    assert "Invitation sent again to new.person@alder.test. The earlier link no longer works." in flash_text(page)
    assert list(open_rows(page)) == [INVITEE]  # one open invitation, the new one
    assert (clock.now() + timedelta(hours=48)).strftime("%Y-%m-%d %H:%M UTC") in open_rows(page)[INVITEE]
    messages = outbox.messages(INVITEE)
    assert len(messages) == 2 and messages[-1].subject == "You are invited to Practice Portal"
    new_link = outbox.link(INVITEE)
    assert new_link != old_link
    auth.logout()

    refused = client.get(old_link)
    assert refused.status_code == 400
    assert "This link cannot be used" in refused.get_data(as_text=True)
    assert "replaced by a newer one" in refused.get_data(as_text=True)
    assert accept(client, old_link).status_code == 400
    assert users_named(INVITEE) == 0

    clock.advance(hours=20)  # past the first link's 48 hours, within the new one's
    assert client.get(new_link).status_code == 200
    assert accept(client, new_link).status_code == 303
    assert users_named(INVITEE) == 1
    (resent,) = events("invitation.resent")
    assert resent.actor_id == admin.id and resent.practice_id == admin.practice_id
    assert INVITEE in resent.detail and "http" not in resent.detail


def test_resend_with_htmx_swaps_the_open_invitations_in_place(client, outbox, admin):
    """With HTMX, does Resend answer with the open invitations (and the message), not a page?"""
    invite(client)
    invite(client, email="second@alder.test", name="Second Person")
    response = client.post(action(client, INVITEE, "resend"), headers=HTMX_INVITATIONS)
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert body.lstrip().startswith('<section class="card" id="open-invitations"')
    assert "<html" not in body
    assert sorted(open_rows(body)) == ["new.person@alder.test", "second@alder.test"]
    assert 'id="invitations-summary"' in body and "autofocus" in body  # focus lands on the new list
    assert 'hx-swap-oob="innerHTML"' in body  # the message goes to the page's live region
    assert "Invitation sent again to new.person@alder.test." in flash_text(body)
    assert len(outbox.messages(INVITEE)) == 2 and len(outbox.messages("second@alder.test")) == 1


def test_resend_to_an_address_with_an_account_sends_its_owner_the_notice_again(client, outbox, admin, alder):
    """Resending an invitation to someone who already has an account: the same answer, and the
    owner gets the short notice again (never a link)?"""
    invite(client, email="ben@alder.test", name="Ben Again")
    response = client.post(action(client, "ben@alder.test", "resend"))
    assert response.status_code == 303
    assert "Invitation sent again to ben@alder.test." in flash_text(client.get(USERS).get_data(as_text=True))
    notices = outbox.messages("ben@alder.test")
    assert [message.subject for message in notices] == ["Someone tried to invite you to Practice Portal"] * 2
    assert all("/invitations/" not in message.body_text for message in notices)


def test_a_failed_resend_keeps_the_old_link_and_writes_nothing(app, make_app, outbox, clock, admin):
    """When the mail server refuses the new email, is the old link still good and nothing kept?"""
    invitations.invite(admin=admin, email=INVITEE, display_name="New Person", role="staff", now=clock.now())
    old_link = outbox.link(INVITEE)
    with SMTPServer(refuse=-1) as refusing:
        mail_app = make_app(MAIL_TRANSPORT="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=refusing.port,
                            MAIL_SUPPRESS_SEND=False, MAIL_TIMEOUT_SECONDS=2)
        client = mail_app.test_client()
        assert client.post("/login", data={"email": "admin@alder.test", "password": PASSWORD}).status_code == 303
        path = action(client, INVITEE, "resend")
        for headers in ({}, HTMX_INVITATIONS):
            response = client.post(path, headers=headers)
            html = response.get_data(as_text=True)
            assert response.status_code == 503
            assert "The invitation email could not be sent. Nothing changed: the earlier link still works." in html
            assert list(open_rows(html)) == [INVITEE]
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Invitation.id))) == 1
    assert events("invitation.resent") == []
    assert app.test_client().get(old_link).status_code == 200


# --- revoke -----------------------------------------------------------------------------------

@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_revoke_withdraws_the_invitation_and_its_link_shows_the_link_problem_page(client, auth, outbox, admin,
                                                                                 htmx):
    """Does Revoke take the invitation off the list, and its link then say it cannot be used?"""
    invite(client)
    invite(client, email="stays@alder.test", name="Stays Open")
    link = outbox.link(INVITEE)
    response = client.post(action(client, INVITEE, "revoke"), headers=HTMX_INVITATIONS if htmx else {})
    if htmx:
        assert response.status_code == 200
        body = response.get_data(as_text=True)
        assert "<html" not in body and list(open_rows(body)) == ["stays@alder.test"]
    else:
        assert response.status_code == 303 and response.headers["Location"] == USERS
        body = client.get(USERS).get_data(as_text=True)
        assert list(open_rows(body)) == ["stays@alder.test"]
    assert "Invitation to new.person@alder.test revoked. Its link no longer works." in flash_text(body)
    (revoked,) = events("invitation.revoked")
    assert revoked.actor_id == admin.id and INVITEE in revoked.detail
    auth.logout()

    page = client.get(link)
    html = page.get_data(as_text=True)
    assert page.status_code == 400
    assert "This link cannot be used" in html and "withdrawn by your practice" in html
    assert accept(client, link).status_code == 400
    assert users_named(INVITEE) == 0
    assert events("invitation.accepted") == []


def test_the_last_invitation_revoked_says_there_are_none(client, outbox, admin):
    """After revoking the only open invitation, does the list say there are none?"""
    invite(client)
    response = client.post(action(client, INVITEE, "revoke"), headers=HTMX_INVITATIONS)
    assert "No open invitations." in response.get_data(as_text=True)
    assert open_rows(response.get_data(as_text=True)) == {}


# --- what cannot be resent or revoked ----------------------------------------------------------

def test_another_practices_invitation_does_not_exist_for_this_admin(client, outbox, clock, admin, other_practice):
    """Can Alder's admin resend or revoke Birch's invitation by its number? (404, untouched)"""
    birch_admin = db.session.scalar(select(User).where(User.email == "birch-admin@birch.test"))
    theirs = invitations.invite(admin=birch_admin, email="newbie@birch.test", display_name="Newbie", role="staff",
                                now=clock.now())
    link = outbox.link("newbie@birch.test")
    for verb in ("resend", "revoke"):
        for headers in ({}, HTMX_INVITATIONS):
            response = client.post(f"/practice/invitations/{theirs.id}/{verb}", headers=headers)
            assert response.status_code == 404, (verb, headers)
            assert "newbie@birch.test" not in response.get_data(as_text=True)
        assert client.post(f"/practice/invitations/{theirs.id + 1000}/{verb}").status_code == 404
        assert client.post(f"/practice/invitations/0/{verb}").status_code == 404
        assert client.post(f"/practice/invitations/abc/{verb}").status_code == 404
        assert client.get(f"/practice/invitations/{theirs.id}/{verb}").status_code == 405
    assert len(outbox.messages("newbie@birch.test")) == 1
    assert events("invitation.resent") == events("invitation.revoked") == []
    assert client.get(link).status_code == 200


def test_closed_invitations_say_why_they_cannot_be_resent_or_revoked(app, client, auth, outbox, clock, admin):
    """Revoked, accepted or expired: does a resend or revoke say so (409), plain and HTMX, changing nothing?"""
    invite(client)
    revoke = action(client, INVITEE, "revoke")
    resend = revoke.replace("/revoke", "/resend")
    assert client.post(revoke).status_code == 303
    for path in (revoke, resend):
        for headers in ({}, HTMX_INVITATIONS):
            response = client.post(path, headers=headers)
            html = response.get_data(as_text=True)
            assert response.status_code == 409
            assert "The invitation to new.person@alder.test was already revoked." in html
            assert ('role="alert"' in html) and (("<html" in html) is not bool(headers))

    invite(client, email="joins@alder.test", name="Joins Soon")
    resend = action(client, "joins@alder.test", "resend")
    assert accept(app.test_client(), outbox.link("joins@alder.test")).status_code == 303
    response = client.post(resend)
    assert response.status_code == 409
    assert "joins@alder.test has already accepted this invitation." in response.get_data(as_text=True)

    invite(client, email="slow@alder.test", name="Slow Reader")
    revoke = action(client, "slow@alder.test", "revoke")
    clock.advance(hours=48, seconds=1)
    auth.login("admin@alder.test", PASSWORD)  # the earlier session has long ended
    response = client.post(revoke, headers=HTMX_INVITATIONS)
    assert response.status_code == 409
    assert "The invitation to slow@alder.test has expired. Invite them again." in response.get_data(as_text=True)
    assert len(events("invitation.revoked")) == 1 and events("invitation.resent") == []


def test_a_resent_invitations_old_number_is_replaced(client, outbox, admin):
    """Resending from a stale page (the invitation was resent meanwhile): is it refused as replaced?"""
    invite(client)
    stale = action(client, INVITEE, "resend")
    assert client.post(stale).status_code == 303
    response = client.post(stale)
    assert response.status_code == 409
    assert "was already replaced by a newer one" in response.get_data(as_text=True)
    assert len(outbox.messages(INVITEE)) == 2


def test_resend_and_revoke_work_with_csrf_protection_on(make_app, app, outbox, alder):
    """With CSRF on (as in production), do the buttons' forms carry the token, and is a POST without it refused?"""
    csrf_app = make_app(WTF_CSRF_ENABLED=True)
    make_user("admin@alder.test", role="practice_admin", practice=alder, display_name="Ada Admin")
    client = csrf_app.test_client()
    login_token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                            client.get("/login").get_data(as_text=True)).group(1)
    client.post("/login", data={"email": "admin@alder.test", "password": PASSWORD, "csrf_token": login_token})
    page = client.get(USERS).get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    client.post("/practice/invitations", data={"email": INVITEE, "display_name": "New", "role": "staff",
                                               "csrf_token": token})
    row = open_rows(client.get(USERS).get_data(as_text=True))[INVITEE]
    assert 'name="csrf_token"' in row
    path = re.search(r'action="(/practice/invitations/\d+/revoke)"', row).group(1)
    assert client.post(path).status_code == 400
    assert list(open_rows(client.get(USERS).get_data(as_text=True))) == [INVITEE]
    assert client.post(path, data={"csrf_token": token}).status_code == 303
    assert open_rows(client.get(USERS).get_data(as_text=True)) == {}


# --- limits and races --------------------------------------------------------------------------

@pytest.fixture
def race_app(make_app, app):
    return make_app(SQLALCHEMY_ENGINE_OPTIONS=POOL)


def admin_client(race_app):
    client = race_app.test_client()
    response = client.post("/login", data={"email": "admin@alder.test", "password": PASSWORD})
    assert response.status_code == 303 and "/login" not in response.headers["Location"]
    return client


@pytest.fixture
def alder_with_admin(alder):
    return make_user("admin@alder.test", role="practice_admin", practice=alder, display_name="Ada Admin")


def test_twenty_revokes_at_once_revoke_once(race_app, outbox, clock, alder_with_admin):
    """Twenty tabs press Revoke on one invitation at once: does exactly one revoke it?"""
    invitation_id = invitations.invite(admin=alder_with_admin, email=INVITEE, display_name="New", role="staff",
                                       now=clock.now()).id
    tabs = clones(race_app, admin_client(race_app), THREADS)
    statuses = fire(THREADS, lambda i: tabs[i].post(f"/practice/invitations/{invitation_id}/revoke").status_code)
    assert sorted(statuses) == [303] + [409] * (THREADS - 1)
    assert len(events("invitation.revoked")) == 1
    db.session.expire_all()
    assert db.session.get(Invitation, invitation_id).revoked_at is not None


def test_twenty_resends_at_once_send_one_new_link(race_app, outbox, clock, alder_with_admin):
    """Twenty tabs press Resend on one invitation at once: is one new invitation made and emailed?"""
    invitation_id = invitations.invite(admin=alder_with_admin, email=INVITEE, display_name="New", role="staff",
                                       now=clock.now()).id
    tabs = clones(race_app, admin_client(race_app), THREADS)
    statuses = fire(THREADS, lambda i: tabs[i].post(f"/practice/invitations/{invitation_id}/resend").status_code)
    assert sorted(statuses) == [303] + [409] * (THREADS - 1)
    assert len(outbox.messages(INVITEE)) == 2  # the first invitation and one resend
    assert len(events("invitation.resent")) == 1
    still_open = invitations.open_for_practice(alder_with_admin.practice_id, now=clock.now())
    assert [(row.email, row.id != invitation_id) for row in still_open] == [(INVITEE, True)]


def test_revokes_and_resends_racing_have_one_outcome(race_app, outbox, clock, alder_with_admin):
    """Ten Revokes and ten Resends of one invitation at once: does exactly one of them happen?"""
    invitation_id = invitations.invite(admin=alder_with_admin, email=INVITEE, display_name="New", role="staff",
                                       now=clock.now()).id
    tabs = clones(race_app, admin_client(race_app), THREADS)
    verbs = ["revoke", "resend"] * (THREADS // 2)
    statuses = fire(THREADS, lambda i: tabs[i].post(f"/practice/invitations/{invitation_id}/{verbs[i]}").status_code)
    assert sorted(statuses) == [303] + [409] * (THREADS - 1)
    winner = verbs[statuses.index(303)]
    resent, revoked = len(events("invitation.resent")), len(events("invitation.revoked"))
    open_now = invitations.open_for_practice(alder_with_admin.practice_id, now=clock.now())
    if winner == "resend":
        assert (resent, revoked, len(open_now), len(outbox.messages(INVITEE))) == (1, 0, 1, 2)
    else:
        assert (resent, revoked, len(open_now), len(outbox.messages(INVITEE))) == (0, 1, 0, 1)


def test_an_accept_racing_revokes_either_joins_or_is_refused_never_both(race_app, outbox, clock, alder_with_admin):
    """The invited person sets a password while the admin revokes, ten times each at once: is
    the outcome exactly one of the two, with nothing half-written?"""
    invitations.invite(admin=alder_with_admin, email=INVITEE, display_name="New Person", role="staff",
                       now=clock.now())
    link = outbox.link(INVITEE)
    invitation_id = db.session.scalar(select(Invitation.id).where(Invitation.email == INVITEE))
    admin_tabs = clones(race_app, admin_client(race_app), THREADS // 2)
    strangers = [race_app.test_client() for _ in range(THREADS // 2)]

    def act(i):
        if i % 2:
            return "revoke", admin_tabs[i // 2].post(f"/practice/invitations/{invitation_id}/revoke").status_code
        return "accept", accept(strangers[i // 2], link).status_code

    outcomes = fire(THREADS, act)
    wins = [kind for kind, status in outcomes if status == 303]
    assert len(wins) == 1, outcomes
    assert all(status == (409 if kind == "revoke" else 400) for kind, status in outcomes if status != 303), outcomes
    db.session.expire_all()
    invitation = db.session.get(Invitation, invitation_id)
    if wins == ["accept"]:
        assert invitation.accepted_at is not None and invitation.revoked_at is None
        assert users_named(INVITEE) == 1
        assert (len(events("invitation.accepted")), len(events("invitation.revoked"))) == (1, 0)
    else:
        assert invitation.revoked_at is not None and invitation.accepted_at is None
        assert users_named(INVITEE) == 0
        assert (len(events("invitation.accepted")), len(events("invitation.revoked"))) == (0, 1)


def test_resends_are_rate_limited_per_admin_even_at_once(make_app, app, outbox, clock, alder_with_admin):
    """Twenty resends of twenty invitations at once with an allowance of three: do three go out
    and the rest get a clear 429 with nothing sent?"""
    limited = make_app(RATELIMIT_ENABLED=True, LIMIT_INVITATION_RESEND_PER_USER="3 per hour",
                       LIMIT_LOGIN_PER_ADDRESS="100 per minute", LIMIT_LOGIN_PER_ACCOUNT="100 per minute",
                       RATELIMIT_KEY_PREFIX=f"test-{uuid.uuid4().hex[:8]}", SQLALCHEMY_ENGINE_OPTIONS=POOL)
    ids = [invitations.invite(admin=alder_with_admin, email=f"person{i:02d}@alder.test", display_name=f"P {i}",
                              role="staff", now=clock.now()).id for i in range(THREADS)]
    tabs = clones(limited, admin_client(limited), THREADS)
    responses = fire(THREADS, lambda i: tabs[i].post(f"/practice/invitations/{ids[i]}/resend"))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [303] * 3 + [429] * (THREADS - 3)
    refused = next(response for response in responses if response.status_code == 429)
    assert "Too many attempts" in refused.get_data(as_text=True) and "Retry-After" in refused.headers
    assert len(events("invitation.resent")) == 3
    assert sum(len(outbox.messages(f"person{i:02d}@alder.test")) for i in range(THREADS)) == THREADS + 3
    # Another admin has an allowance of their own.
    make_user("second-admin@alder.test", role="practice_admin", practice=alder_with_admin.practice)
    other = limited.test_client()
    assert other.post("/login", data={"email": "second-admin@alder.test", "password": PASSWORD}).status_code == 303
    still_open = [row.id for row in invitations.open_for_practice(alder_with_admin.practice_id, now=clock.now())]
    assert other.post(f"/practice/invitations/{still_open[-1]}/resend").status_code == 303


def test_only_practice_admins_reach_resend_and_revoke(client, auth, outbox, clock, alder_with_admin):
    """Can a clinician of the practice, or someone logged out, resend or revoke an invitation?"""
    invitation = invitations.invite(admin=alder_with_admin, email=INVITEE, display_name="New", role="staff",
                                    now=clock.now())
    make_practice("Elsewhere")
    make_user("clinic@alder.test", practice=alder_with_admin.practice, display_name="Cli Nician")
    for verb in ("resend", "revoke"):
        assert client.post(f"/practice/invitations/{invitation.id}/{verb}").status_code in (302, 303)
    auth.login("clinic@alder.test", PASSWORD)
    for verb in ("resend", "revoke"):
        assert client.post(f"/practice/invitations/{invitation.id}/{verb}").status_code == 403
    assert len(outbox.messages(INVITEE)) == 1
    assert events("invitation.resent") == events("invitation.revoked") == []
