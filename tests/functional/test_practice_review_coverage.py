"""The practice admin's MFA enforcement review: the requirement as shown and the MFA coverage.

Every test logs in through the Log In form and reads pages the way the admin would see them.
Helpers are in practice_review_helpers.py, the shared fixtures in conftest.py.
"""

from __future__ import annotations

import re

from tests.factories import PASSWORD, make_enrollment, make_practice, make_user
from tests.functional.practice_review_helpers import REVIEW, login_admin, table_emails, text_of

# --- requirement and coverage -------------------------------------------------------------------

def test_coverage_counts_active_users_split_by_method(client, alder_admin):
    """With 2 app, 1 SMS, 1 Email users, 2 without MFA and 1 inactive: are the numbers right?"""
    html = client.get(REVIEW).get_data(as_text=True)
    assert "MFA is optional in this practice" in text_of(html, "requirement-state")
    coverage = text_of(html, "coverage")
    assert "4 of 6 users have MFA (67%)" in coverage
    assert "Authenticator Apps: 2 · SMS: 1 · Email: 1." in coverage
    assert "If MFA were required today, 2 users would have to enroll at next Log In." in text_of(html, "would-enroll")
    see_who = re.search(r'<p id="would-enroll">.*?<a href="([^"]+)">See who</a>', html, re.S).group(1)
    listed = table_emails(client.get(see_who.replace("&amp;", "&")).get_data(as_text=True))
    assert sorted(listed) == ["admin@alder.test", "finn@alder.test"]


def test_the_requirement_is_shown_read_only(client, alder_admin):
    """Is there anything on the review page that switches the requirement directly?"""
    html = client.get(REVIEW).get_data(as_text=True)
    forms = re.findall(r'<form method="post" action="([^"]+)"', html)
    assert set(forms) == {"/practice/requests", "/logout"}
    assert 'name="mfa_required"' not in html and 'name="required"' not in html


def test_a_practice_with_no_other_users_reads_sensibly(client, auth):
    """Does an admin alone in a new practice see 0 of 1 and one user who would enroll?"""
    login_admin(auth, make_practice("Solo Clinic"), email="solo@solo.test", name="Sol Solo")
    html = client.get(REVIEW).get_data(as_text=True)
    assert "0 of 1 users have MFA (0%)" in text_of(html, "coverage")
    assert "1 user would have to enroll" in text_of(html, "would-enroll")
    assert table_emails(html) == ["solo@solo.test"]


def test_a_required_practice_shows_required_and_no_would_enroll(client, auth, other_practice):
    """When MFA is already required, does the page say so and drop the 'if it were required' line?"""
    practice = make_practice("Cedar Care", mfa_required=True)
    admin = make_user("admin@cedar.test", role="practice_admin", practice=practice, display_name="Cy Cedar")
    secret = make_enrollment(admin, "totp")
    make_user("nomfa@cedar.test", practice=practice, display_name="Nia Nomfa")
    assert auth.login_totp("admin@cedar.test", PASSWORD, secret).status_code == 303
    html = client.get(REVIEW).get_data(as_text=True)
    assert "MFA is required for everyone in this practice" in text_of(html, "requirement-state")
    assert 'id="would-enroll"' not in html
    assert "1 of 2 users have MFA (50%)" in text_of(html, "coverage")
    assert "Ask support to stop requiring MFA" in html
