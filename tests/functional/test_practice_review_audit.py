"""The practice admin's MFA enforcement review: the practice's security events.

Every test logs in through the Log In form and reads pages the way the admin would see them.
Helpers are in practice_review_helpers.py, the shared fixtures in conftest.py.
"""

from __future__ import annotations

import re

from sqlalchemy import func, select

from portal import audit
from portal.extensions import db
from portal.models import AuditEvent, User
from tests.factories import PASSWORD
from tests.functional.practice_review_helpers import login_admin

# --- the practice's security events -----------------------------------------------------------

def test_audit_shows_only_this_practices_events(client, auth, alder, other_practice):
    """Do the admin's security events include their people's sign-ins and none of another practice's?"""
    auth.login("bella@birch.test", "not the right password")
    auth.login("bella@birch.test", PASSWORD)
    auth.logout()
    auth.login("bob@birch.test", PASSWORD)  # Bob has an app: he stops at the code step
    auth.login("finn@alder.test", PASSWORD)
    auth.logout()
    bob = db.session.scalar(select(User).where(User.email == "bob@birch.test"))
    audit.record("practice.request_made", actor=bob, practice_id=other_practice.id, detail={"request": 0}, commit=True)
    birch_events = db.session.scalar(
        select(func.count(AuditEvent.id)).where(AuditEvent.practice_id == other_practice.id))
    assert birch_events >= 5

    login_admin(auth, alder)
    for query in ({}, {"practice": other_practice.id}, {"user": bob.id}, {"event_type": "practice.request_made"}):
        response = client.get("/practice/audit", query_string=query)
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        for leaked in ("bob@birch.test", "bella@birch.test", "birch-admin@birch.test"):
            assert leaked not in html, query
    html = client.get("/practice/audit").get_data(as_text=True)
    assert "finn@alder.test" in html
    assert "Logged in" in html and "Logged out" in html
    every_step = client.get("/practice/audit", query_string={"steps": "all"}).get_data(as_text=True)
    shown = len(re.findall(r'<tr id="event-\d+"', every_step))
    alder_events = db.session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.practice_id == alder.id))
    assert shown == alder_events


def test_nonsense_audit_filters_answer_200(client, alder_admin):
    """Do made-up or out-of-range filter values on the security events get a page, never a 500?"""
    for query in ({"user": "abc"}, {"user": 2**40}, {"before": 2**61}, {"before": "-1"}, {"from": "2020-13-45"},
                  {"to": "yesterday"}, {"event_type": "evil"}, {"practice": 2**40}):
        assert client.get("/practice/audit", query_string=query).status_code == 200, query
