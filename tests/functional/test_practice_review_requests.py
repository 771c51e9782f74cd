"""The practice admin's MFA enforcement review: asking support to change the requirement.

Every test logs in through the Log In form and reads pages the way the admin would see them.
Helpers are in practice_review_helpers.py, the shared fixtures in conftest.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal.enforcement import requirement
from portal.extensions import db
from portal.models import Practice, RequirementRequest
from tests.factories import PASSWORD, make_enrollment, make_practice, make_user
from tests.functional.practice_review_helpers import REVIEW, text_of

# --- asking support to change the requirement ---------------------------------------------------

def test_request_to_require_mfa_is_sent_and_shown(client, alder_admin, clock):
    """After asking support to require MFA, does the page say the request is waiting?"""
    response = client.post("/practice/requests", data={"note": "We had a phishing scare."})
    assert response.status_code == 303 and response.headers["Location"].endswith("/practice/")
    html = client.get(REVIEW).get_data(as_text=True)
    assert "Your request was sent to support" in html
    state = text_of(html, "request-state")
    assert "Your request to require MFA" in state and "is waiting for support" in state
    assert clock.now().strftime("%Y-%m-%d %H:%M") in state
    assert 'action="/practice/requests"' not in html
    request = db.session.scalar(select(RequirementRequest))
    assert (request.status, request.require, request.note) == ("pending", True, "We had a phishing scare.")
    assert request.requested_by_id == alder_admin.id
    assert db.session.get(Practice, alder_admin.practice_id).mfa_required is False


def test_htmx_request_without_a_note_redirects_with_hx_redirect(client, alder_admin):
    """Sent by HTMX with no note (it is optional), does the request get an HX-Redirect to the review?"""
    response = client.post("/practice/requests", data={}, headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == "/practice/"
    assert db.session.scalars(select(RequirementRequest.note)).all() == [""]


def test_second_request_while_one_is_open_is_409(client, alder_admin):
    """A second request while the first is open: is it refused with 409 and a message saying why?"""
    client.post("/practice/requests", data={"note": "first"})
    response = client.post("/practice/requests", data={"note": "second"})
    assert response.status_code == 409
    assert "There is already an open request for this practice" in response.get_data(as_text=True)
    assert db.session.scalars(select(RequirementRequest.note)).all() == ["first"]


def test_a_note_over_1000_characters_is_refused(client, alder_admin):
    """Is an overlong note refused with 400 and nothing recorded?"""
    response = client.post("/practice/requests", data={"note": "x" * 1001})
    assert response.status_code == 400
    assert db.session.scalar(select(func.count(RequirementRequest.id))) == 0


def test_a_start_date_that_has_passed_is_refused_with_a_message(client, alder_admin, clock):
    """Asking for MFA from a date that has passed: is it a 400 saying so, nothing sent, rather
    than a request to require MFA at once? (Today's date means now, and is sent.)"""
    yesterday = (clock.now() - timedelta(days=1)).date().isoformat()
    response = client.post("/practice/requests", data={"note": "From then", "starts_on": yesterday})
    assert response.status_code == 400
    assert f"{yesterday} has passed: choose today (to start now) or a later date." in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(RequirementRequest.id))) == 0

    today = clock.now().date().isoformat()
    assert client.post("/practice/requests", data={"note": "Now", "starts_on": today}).status_code == 303
    request = db.session.scalar(select(RequirementRequest))
    assert (request.require, request.required_from) == (True, None)


@pytest.fixture
def support_user():
    return make_user("support@portal.test", role="support", display_name="Sue Support")


@pytest.fixture
def alder_admin_with_mfa(alder, auth, clock):
    """Alder's admin with an authenticator app, so the requirement, once on, does not lock them out."""
    admin = make_user("admin@alder.test", role="practice_admin", practice=alder, display_name="Ada Admin")
    secret = make_enrollment(admin, "totp")
    assert auth.login_totp("admin@alder.test", PASSWORD, secret).status_code == 303
    return admin


def test_approved_request_turns_the_requirement_on(client, alder_admin_with_mfa, support_user, outbox, clock):
    """After support approves, does the admin see 'approved', support's note and MFA required?"""
    client.post("/practice/requests", data={"note": "Please require it."})
    request = db.session.scalar(select(RequirementRequest))
    clock.advance(minutes=30)
    requirement.decide(request, actor=support_user, approve=True, note="Done, as asked.", now=clock.now())

    html = client.get(REVIEW).get_data(as_text=True)
    assert "Your last request to require MFA was approved: “Done, as asked.”" in text_of(html, "request-state")
    assert "MFA is required for everyone in this practice" in text_of(html, "requirement-state")
    assert 'id="would-enroll"' not in html
    assert "Ask support to stop requiring MFA" in html
    db.session.expire_all()
    assert db.session.get(Practice, alder_admin_with_mfa.practice_id).mfa_required is True
    # Finn, the only active user without MFA, is told; nobody at Birch is.
    notified = {message.recipient for message in outbox.messages(channel="email")}
    assert "finn@alder.test" in notified
    assert not any(email.endswith("@birch.test") for email in notified)


def test_declined_request_leaves_the_requirement_off(client, alder_admin_with_mfa, support_user, clock):
    """After support declines, does the admin see 'declined' and the note, and may ask again?"""
    client.post("/practice/requests", data={"note": "Please require it."})
    request = db.session.scalar(select(RequirementRequest))
    requirement.decide(request, actor=support_user, approve=False, note="Talk to your users first.", now=clock.now())

    html = client.get(REVIEW).get_data(as_text=True)
    assert ("Your last request to require MFA was declined: “Talk to your users first.”"
            in text_of(html, "request-state"))
    assert "MFA is optional" in text_of(html, "requirement-state")
    assert 'action="/practice/requests"' in html
    assert client.post("/practice/requests", data={"note": "Again, please."}).status_code == 303
    assert db.session.scalar(select(func.count(RequirementRequest.id))) == 2


def test_in_a_required_practice_the_request_is_to_stop_requiring(client, auth, support_user, clock):
    """When MFA is required, is the admin's request one to stop requiring it, and does approval do that?"""
    practice = make_practice("Cedar Care", mfa_required=True)
    admin = make_user("admin@cedar.test", role="practice_admin", practice=practice, display_name="Cy Cedar")
    secret = make_enrollment(admin, "totp")
    auth.login_totp("admin@cedar.test", PASSWORD, secret)
    client.post("/practice/requests", data={"note": "Pilot is over."})
    assert "Your request to stop requiring MFA" in text_of(client.get(REVIEW).get_data(as_text=True), "request-state")
    request = db.session.scalar(select(RequirementRequest))
    assert request.require is False
    requirement.decide(request, actor=support_user, approve=True, note="Turned off.", now=clock.now())
    html = client.get(REVIEW).get_data(as_text=True)
    assert "MFA is optional" in text_of(html, "requirement-state")
    assert "was approved" in text_of(html, "request-state")
