"""The practice admin's MFA enforcement review: who may open it, that one practice never sees
another's people, and what an admin must not change (clearing MFA belongs to support alone).

Every test logs in through the Log In form and reads pages the way the admin would see them.
Helpers are in practice_review_helpers.py, the shared fixtures in conftest.py.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AuditEvent, Invitation, MfaEnrollment, RequirementRequest, User
from tests.conftest import without_csrf_tokens
from tests.factories import PASSWORD, make_user
from tests.functional.practice_review_helpers import (
    ALDER_EMAILS,
    BIRCH_NAMES_AND_EMAILS,
    CSV_URL,
    HTMX_TABLE,
    REVIEW,
    csv_rows,
    page_position,
    table_emails,
    table_rows,
)

# --- who may open the review --------------------------------------------------------------------

@pytest.mark.parametrize("role", ["clinician", "staff"])
def test_clinicians_and_staff_get_403_everywhere_in_the_review(client, auth, alder, role):
    """Can a clinician or staff member read the review, the CSV, a member, the events, or file a request?"""
    user = make_user(f"{role}@alder.test", role=role, practice=alder)
    auth.login(f"{role}@alder.test", PASSWORD)
    for path in (REVIEW, CSV_URL, f"/practice/users/{user.id}", "/practice/audit"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert "ben@alder.test" not in response.get_data(as_text=True)
    assert client.post("/practice/requests", data={"note": "please"}).status_code == 403
    assert db.session.scalar(select(func.count(RequirementRequest.id))) == 0


def test_logged_out_visitor_is_sent_to_log_in(client, alder):
    """Does a visitor who is not logged in get Log In instead of the table or the CSV?"""
    page = client.get(REVIEW)
    assert page.status_code == 303 and "/login" in page.headers["Location"]
    download = client.get(CSV_URL)
    assert download.status_code == 303 and "ben@alder.test" not in download.get_data(as_text=True)
    fragment = client.get(REVIEW, headers=HTMX_TABLE)
    assert fragment.status_code == 401 and "/login" in fragment.headers["HX-Redirect"]
    assert fragment.get_data(as_text=True) == ""


# --- one practice never sees another ------------------------------------------------------------

def test_other_practices_member_is_404(client, alder_admin, other_practice):
    """Does the admin get 404, with nothing about the person, for another practice's (or support's) user id?"""
    bob = db.session.scalar(select(User).where(User.email == "bob@birch.test"))
    response = client.get(f"/practice/users/{bob.id}")
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert "bob@birch.test" not in body and "Bob Birch" not in body
    missing = client.get("/practice/users/987654")
    assert missing.status_code == 404
    assert _without_request_ids(missing.get_data(as_text=True)) == _without_request_ids(body)


    support = make_user("helper@portal.test", role="support", display_name="Hal Helper")
    assert client.get(f"/practice/users/{support.id}").status_code == 404


def test_an_absurdly_large_user_id_is_404_not_a_server_error(client, alder_admin):
    """Does probing /practice/users/<id> with ids beyond any database integer get 404, not a 500?"""
    for huge in (2**31, 2**63, 10**30):
        assert client.get(f"/practice/users/{huge}").status_code == 404, huge


def _without_request_ids(html: str) -> str:
    """The page without what differs on every request: its request id and CSRF tokens (timed)."""
    return re.sub(r"[0-9a-f]{16}", "", without_csrf_tokens(html))


def test_own_member_page_shows_their_mfa_state(client, alder_admin):
    """Does a member's page show their email, role and method?"""
    dan = db.session.scalar(select(User).where(User.email == "dan@alder.test"))
    response = client.get(f"/practice/users/{dan.id}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "dan@alder.test" in html and "Clinician" in html and "<dd>SMS</dd>" in html
    assert "+12025550143" not in html


LEAK_PROBES = [
    {}, {"filter": "with_mfa"}, {"filter": "without_mfa"}, {"q": "bob@birch.test"}, {"q": "birch"},
    {"q": "Bella"}, {"sort": "email", "dir": "desc"}, {"sort": "method"}, {"sort": "last_mfa", "dir": "desc"},
    {"page": "2"}, {"q": "%"},
]


def test_other_practices_users_never_appear_in_table_or_csv(client, alder_admin, other_practice):
    """Whatever the filter, search or sort, does the table or CSV ever show another practice's people?"""
    for query in LEAK_PROBES:
        html = client.get(REVIEW, query_string=query).get_data(as_text=True)
        fragment = client.get(REVIEW, query_string=query, headers=HTMX_TABLE).get_data(as_text=True)
        download = client.get(CSV_URL, query_string=query).get_data(as_text=True)
        # A search term is echoed back in the search box and links, so then only look at what was found.
        bodies = [download] + ([html, fragment] if "q" not in query else [])
        shown = [cell for body in (html, fragment) for row in table_rows(body) for cell in row]
        for leaked in BIRCH_NAMES_AND_EMAILS:
            assert not any(leaked in body for body in bodies), (query, leaked)
            assert not any(leaked in cell for cell in shown), (query, leaked)
        assert set(table_emails(html)) <= ALDER_EMAILS, query


def test_searching_another_practices_email_finds_nobody(client, alder_admin, other_practice):
    """Can the admin learn that bob@birch.test exists by searching for him?"""
    html = client.get(REVIEW, query_string={"q": "bob@birch.test"}).get_data(as_text=True)
    assert page_position(html) == (0, 1, 1)
    assert "No users match." in html
    assert csv_rows(client.get(CSV_URL, query_string={"q": "bob@birch.test"})) == []


# --- clearing MFA belongs to support alone -------------------------------------------------------

def test_practice_admin_cannot_clear_a_users_mfa(client, alder_admin):
    """Can a practice admin clear a colleague's MFA through the support route or a practice one?"""
    ben = db.session.scalar(select(User).where(User.email == "ben@alder.test"))
    form = {"reason": "Lost phone", "ticket": "T-1"}
    assert client.post(f"/support/users/{ben.id}/clear-mfa", data=form).status_code == 404
    assert client.post(f"/support/users/{ben.id}/clear-mfa", data=form,
                       headers={"HX-Request": "true"}).status_code == 404
    assert client.post(f"/practice/users/{ben.id}/clear-mfa", data=form).status_code in (404, 405)
    assert client.post(f"/practice/users/{ben.id}", data=form).status_code == 405
    db.session.expire_all()
    assert db.session.scalar(select(MfaEnrollment.method).where(MfaEnrollment.user_id == ben.id)) == "totp"
    assert db.session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.event_type == "mfa.cleared")) == 0
    member_page = client.get(f"/practice/users/{ben.id}").get_data(as_text=True)
    assert "clear-mfa" not in member_page
    assert "Only support can clear" in member_page


def test_no_practice_route_changes_a_users_mfa(app):
    """Apart from filing a request and inviting people (resending or revoking an invitation), does
    any /practice URL accept a change?"""
    changing = {
        rule.rule for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/practice") and rule.methods & {"POST", "PUT", "PATCH", "DELETE"}
    }
    assert changing == {"/practice/requests", "/practice/invitations",
                        "/practice/invitations/<id:invitation_id>/resend",
                        "/practice/invitations/<id:invitation_id>/revoke"}


def test_control_characters_in_free_text_are_refused(client, alder_admin):
    """A NUL in a note or a name: a clear 400, never a database error."""
    response = client.post("/practice/requests", data={"note": "please\x00now"})
    assert response.status_code == 400
    assert "Remove the control characters" in response.get_data(as_text=True)
    response = client.post("/practice/invitations",
                           data={"email": "nul@alder.test", "display_name": "Ada\x00", "role": "staff"})
    assert response.status_code == 400


@pytest.mark.parametrize("name", ["\u202eevil\u202c Admin", "\u200b", "Ada\u200bLovelace", "\ufeffAda"],
                         ids=["right-to-left override", "zero-width space alone", "zero-width space", "BOM"])
def test_a_name_with_invisible_characters_is_refused(client, alder_admin, name):
    """A display name that would show blank, or reversed ("nimdA" shown as "Admin"): a 400
    saying what to remove, and no invitation; a name with accents is welcome."""
    response = client.post("/practice/invitations", data={"email": "new@alder.test", "display_name": name,
                                                          "role": "staff"})
    assert response.status_code == 400
    assert "Remove the invisible characters" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(Invitation.id))) == 0
    response = client.post("/practice/invitations", data={"email": "new@alder.test", "display_name": "José Núñez",
                                                          "role": "staff"})
    assert response.status_code == 303

