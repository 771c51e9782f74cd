"""A way out for a user who lost their phone: "Can't use this method?", a request to support,
and support's answer (clear or decline) — never a way to turn MFA off oneself."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AuditEvent, LostAccessRequest, MfaEnrollment
from tests.conftest import without_csrf_tokens
from tests.factories import PASSWORD, make_enrollment, make_practice, make_user
from tests.functional.mfa_helpers import totp_now
from tests.functional.parallel import POOL, THREADS, clones, fire

CONTACT = dict(SUPPORT_CONTACT_EMAIL="help@portal.test", SUPPORT_CONTACT_PHONE="(202) 555-0100",
               SUPPORT_HOURS="Mon–Fri 8am–6pm ET")


@pytest.fixture
def portal(make_app, app):
    return make_app(**CONTACT)


@pytest.fixture
def lost_user():
    practice = make_practice("Harbor Clinic")
    make_user("boss@harbor.test", role="practice_admin", practice=practice, display_name="Hana Boss")
    user = make_user("lost@harbor.test", practice=practice, display_name="Lee Lost")
    make_enrollment(user, "sms", phone="+12025550143")
    return user


def _support(portal, clock):
    client = portal.test_client()
    secret = make_enrollment(make_user("support@portal.test", role="support"), "totp")
    client.post("/login", data={"email": "support@portal.test", "password": PASSWORD})
    client.post("/login/code", data={"code": totp_now(secret, clock)})
    clock.advance(seconds=30)
    client.post("/support/confirm", data={"password": PASSWORD, "code": totp_now(secret, clock)})
    return client


def _ask(portal, email="lost@harbor.test"):
    client = portal.test_client()
    client.post("/login", data={"email": email, "password": PASSWORD})
    code_page = client.get("/login/code").get_data(as_text=True)
    assert 'href="/login/lost-access"' in code_page and "Can't use this method?" in code_page
    page = client.get("/login/lost-access").get_data(as_text=True)
    return client, page


def test_lost_phone_request_reaches_support_who_clears_it_and_the_user_logs_in(portal, lost_user, outbox, clock):
    """User asks from the code page, gets a notice; support sees who, clears; user logs in with password."""
    client, page = _ask(portal)
    assert "help@portal.test" in page and "(202) 555-0100" in page and "Mon–Fri 8am–6pm ET" in page
    sent = client.post("/login/lost-access")
    assert sent.status_code == 200 and "Request sent" in sent.get_data(as_text=True)
    notice = [m for m in outbox.messages("lost@harbor.test") if "request to clear" in (m.subject or "")]
    assert len(notice) == 1 and "If this wasn't you" in notice[0].body_text
    assert db.session.scalar(select(func.count(AuditEvent.id))
                             .where(AuditEvent.event_type == "mfa.lost_access_requested")) == 1

    support = _support(portal, clock)
    queue = support.get("/support/").get_data(as_text=True)
    row = re.search(r'<article class="request" id="lost-access-(\d+)">(.*?)</article>', queue, re.S)
    assert row, queue
    assert "Lee Lost" in row.group(2) and "Harbor Clinic" in row.group(2) and "Hana Boss" in row.group(2)
    assert "SMS to (***) ***-0143" in row.group(2) and "+12025550143" not in queue
    cleared = support.post(f"/support/lost-access/{row.group(1)}/clear",
                           data={"reason": "Lost phone, called the practice back", "ticket": "SUP-77"})
    assert cleared.status_code == 303
    db.session.expire_all()
    assert db.session.scalar(select(func.count(MfaEnrollment.id)).where(MfaEnrollment.user_id == lost_user.id)) == 0
    assert db.session.get(LostAccessRequest, int(row.group(1))).status == "cleared"

    again = portal.test_client()
    assert again.post("/login", data={"email": "lost@harbor.test", "password": PASSWORD}).headers["Location"] == "/"


def test_support_can_decline_with_a_note_that_is_emailed(portal, lost_user, outbox, clock):
    """Does a declined request close, and does the user get support's note?"""
    client, _ = _ask(portal)
    client.post("/login/lost-access")
    request_id = db.session.scalar(select(LostAccessRequest.id))
    support = _support(portal, clock)
    assert support.post(f"/support/lost-access/{request_id}/decline", data={"note": ""}).status_code == 400
    declined = support.post(f"/support/lost-access/{request_id}/decline",
                            data={"note": "We could not reach your practice; call us back."})
    assert declined.status_code == 303
    mail = [m for m in outbox.messages("lost@harbor.test") if "Your request to clear" in (m.subject or "")]
    assert len(mail) == 1 and "We could not reach your practice" in mail[0].body_text
    again = support.post(f"/support/lost-access/{request_id}/decline", data={"note": "twice"})
    assert again.status_code == 400 and "already answered" in again.get_data(as_text=True)
    assert db.session.scalar(select(func.count(MfaEnrollment.id)).where(MfaEnrollment.user_id == lost_user.id)) == 1


def test_without_the_password_the_answer_is_the_same_and_nothing_is_filed(portal, lost_user):
    """Reached without a password, does the page answer exactly as for a real request, filing nothing?"""
    stranger = portal.test_client()
    page = stranger.get("/login/lost-access")
    assert page.status_code == 200
    answer = stranger.post("/login/lost-access")
    real, _ = _ask(portal)
    real_answer = real.post("/login/lost-access")

    def body(response):
        return without_csrf_tokens(response.get_data(as_text=True))

    assert answer.status_code == real_answer.status_code == 200
    assert body(answer) == body(real_answer)
    assert db.session.scalar(select(func.count(LostAccessRequest.id))) == 1  # only the real one


def test_twenty_requests_at_once_file_one(make_app, app, lost_user, outbox):
    """Twenty presses at once from the code step: is exactly one request filed and one notice sent?"""
    racing = make_app(SQLALCHEMY_ENGINE_OPTIONS=POOL, **CONTACT)
    client, _ = _ask(racing)
    tabs = clones(racing, client, THREADS)
    statuses = fire(THREADS, lambda i: tabs[i].post("/login/lost-access").status_code)
    assert set(statuses) == {200}
    assert db.session.scalar(select(func.count(LostAccessRequest.id))) == 1
    assert len([m for m in outbox.messages("lost@harbor.test") if "request to clear" in (m.subject or "")]) == 1


def test_requests_are_rate_limited(make_app, app, lost_user):
    """Is asking limited per address?"""
    limited = make_app(RATELIMIT_ENABLED=True, LIMIT_LOST_ACCESS_PER_ADDRESS="2 per hour", **CONTACT)
    client = limited.test_client()
    statuses = [client.post("/login/lost-access").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
