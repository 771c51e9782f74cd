"""The restricted support area: who gets in, the fresh confirmation, and what support may do."""

import re

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AuditEvent, MfaEnrollment, Practice, RequirementRequest
from tests.factories import PASSWORD, make_enrollment, make_practice, make_user
from tests.functional.mfa_helpers import totp_now
from tests.functional.support_helpers import change_confirmed

SECRET_PHONE = "+12025550143"


@pytest.fixture
def support(app, client, auth, clock):
    """A support user, logged in with their authenticator and confirmed for support work."""
    user = make_user("support@portal.test", role="support", display_name="Sasha Support")
    secret = make_enrollment(user, "totp")
    assert auth.login_totp("support@portal.test", PASSWORD, secret).status_code == 303
    clock.advance(seconds=30)
    response = client.post("/support/confirm", data={"password": PASSWORD, "code": totp_now(secret, clock)})
    assert response.status_code == 303, response.get_data(as_text=True)
    user.secret = secret
    return user


def support_urls(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("support."):
            path = re.sub(r"<[^>]+>", "1", rule.rule)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield path, method


@pytest.mark.parametrize("role", [None, "clinician", "staff", "practice_admin"])
def test_everyone_but_support_gets_404_everywhere(app, client, auth, clock, role):
    """Does the support area admit it exists to anyone else (plain or HTMX)?"""
    if role:
        make_user(f"{role}@example.test", role=role)
        auth.login(f"{role}@example.test", PASSWORD)
    urls = list(support_urls(app))
    assert len(urls) >= 9
    for path, method in urls:
        assert client.open(path, method=method).status_code == 404, (path, method)
        assert client.open(path, method=method, headers={"HX-Request": "true"}).status_code == 404, (path, method)


def test_support_must_enroll_an_authenticator_first(client, auth, clock):
    """Is a support user without MFA held at enrollment, with Authenticator Apps only?"""
    make_user("new-support@portal.test", role="support")
    response = auth.login("new-support@portal.test", PASSWORD)
    assert response.headers["Location"] == "/account/security"
    assert client.get("/support/").headers["Location"] == "/account/security"


def test_support_without_fresh_confirmation_is_asked_again(client, auth, clock):
    """Does every support page ask for password and code, and again after 15 minutes?"""
    user = make_user("support@portal.test", role="support")
    secret = make_enrollment(user, "totp")
    auth.login_totp("support@portal.test", PASSWORD, secret)
    response = client.get("/support/users?q=x")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/support/confirm")
    response = client.post("/support/users/1/clear-mfa", data={"reason": "r", "ticket": "t"})
    assert response.headers["Location"].startswith("/support/confirm")
    page = client.get("/support/confirm").get_data(as_text=True)
    assert "password and a code from your authenticator app" in page
    clock.advance(seconds=30)
    wrong = client.post("/support/confirm",
                        data={"password": PASSWORD,
                              "code": "000000" if totp_now(secret, clock) != "000000" else "111111"})
    assert wrong.status_code == 400
    bad_password = client.post("/support/confirm",
                               data={"password": "wrong password!", "code": totp_now(secret, clock)})
    assert bad_password.status_code == 401
    ok = client.post("/support/confirm?next=/support/users",
                     data={"password": PASSWORD, "code": totp_now(secret, clock)})
    assert ok.headers["Location"] == "/support/users"
    assert client.get("/support/").status_code == 200
    clock.advance(minutes=15, seconds=1)
    assert client.get("/support/").headers["Location"].startswith("/support/confirm")


def test_find_user_and_see_mfa_state_without_secrets(client, support, clock):
    """Does support see method, masked destination and counters, but never a number, secret or code?"""
    practice = make_practice("Lakeside")
    user = make_user("lost.phone@lakeside.test", practice=practice)
    make_enrollment(user, "sms", phone=SECRET_PHONE)
    results = client.get("/support/users?q=lakeside").get_data(as_text=True)
    assert "lost.phone@lakeside.test" in results
    html = client.get(f"/support/users/{user.id}").get_data(as_text=True)
    assert "SMS to (***) ***-0143" in html
    assert SECRET_PHONE not in html and "2025550143" not in html
    assert "Failed code attempts in a row" in html and "Locked" in html


def test_clear_mfa_ends_sessions_and_forces_enrollment_where_required(app, client, support, outbox, clock):
    """After a "lost phone" clear, is the user's open session gone and enrollment forced at next Log In?"""
    practice = make_practice("Required Clinic", mfa_required=True)
    user = make_user("lost@required.test", practice=practice)
    secret = make_enrollment(user, "totp")
    victim = app.test_client()
    victim.post("/login", data={"email": "lost@required.test", "password": PASSWORD})
    assert victim.post("/login/code", data={"code": totp_now(secret, clock)}).status_code == 303
    assert victim.get("/").status_code == 200

    missing = client.post(f"/support/users/{user.id}/clear-mfa", data={"reason": "", "ticket": ""})
    assert missing.status_code == 400
    assert db.session.scalar(select(func.count(MfaEnrollment.id)).where(MfaEnrollment.user_id == user.id)) == 1

    response = client.post(f"/support/users/{user.id}/clear-mfa",
                           data={"reason": "Lost phone; called back", "ticket": "SUP-1234"})
    assert response.status_code == 303
    assert "MFA settings cleared" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert db.session.scalar(select(func.count(MfaEnrollment.id)).where(MfaEnrollment.user_id == user.id)) == 0
    assert victim.get("/").status_code == 303  # the existing session ended

    notice = outbox.last("lost@required.test", "email")
    assert "cleared" in notice.subject and "set it up again at your next Log In" in notice.body_text
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.event_type == "mfa.cleared"))
    assert event.actor_id == support.id and event.subject_id == user.id and "SUP-1234" in event.detail

    response = victim.post("/login", data={"email": "lost@required.test", "password": PASSWORD})
    assert response.headers["Location"] == "/account/security"


def test_cleared_user_of_optional_practice_logs_in_with_password_alone(app, client, support, clock):
    practice = make_practice("Optional Clinic")
    user = make_user("optional@clinic.test", practice=practice)
    make_enrollment(user, "email")
    client.post(f"/support/users/{user.id}/clear-mfa", data={"reason": "Lost access", "ticket": "SUP-9"})
    other = app.test_client()
    assert other.post("/login", data={"email": "optional@clinic.test", "password": PASSWORD}).headers["Location"] == "/"


def test_support_cannot_clear_their_own_mfa(client, support):
    response = client.post(f"/support/users/{support.id}/clear-mfa", data={"reason": "x", "ticket": "y"})
    assert response.status_code == 400
    assert "cannot clear your own" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(MfaEnrollment.id)).where(MfaEnrollment.user_id == support.id)) == 1


def test_turning_the_requirement_on_sends_logged_in_users_to_enrollment(app, client, support, outbox, clock):
    """When support requires MFA, is a user already logged in without MFA sent to enrollment at once?"""
    practice = make_practice("Becoming Strict")
    make_user("loose@strict.test", practice=practice)
    enrolled = make_user("ready@strict.test", practice=practice)
    make_enrollment(enrolled, "email")
    user_client = app.test_client()
    user_client.post("/login", data={"email": "loose@strict.test", "password": PASSWORD})
    assert user_client.get("/").status_code == 200

    no_reason = client.post(f"/support/practices/{practice.id}/requirement", data={"required": "on", "reason": ""})
    assert no_reason.status_code == 400
    response = change_confirmed(client, f"/support/practices/{practice.id}/requirement",
                                {"required": "on", "reason": "Practice asked by phone"})
    assert response.status_code == 303
    db.session.expire_all()
    assert db.session.get(Practice, practice.id).mfa_required is True
    assert user_client.get("/").headers["Location"] == "/account/security"
    notified = [m.recipient for m in outbox.messages(channel="email") if "now requires" in m.subject]
    assert notified == ["loose@strict.test"]
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.event_type == "practice.requirement_changed"))
    assert '"required":true' in event.detail and event.practice_id == practice.id

    again = client.post(f"/support/practices/{practice.id}/requirement", data={"required": "on", "reason": "again"})
    assert again.status_code == 400 and "already required" in again.get_data(as_text=True)
    off = change_confirmed(client, f"/support/practices/{practice.id}/requirement",
                           {"required": "off", "reason": "Trial over"})
    assert off.status_code == 303
    assert user_client.get("/").status_code == 200


def test_request_and_approve_round_trip(app, client, support, clock):
    """Does a practice admin's request reach support, and the decision reach the admin?"""
    practice = make_practice("Asking Clinic")
    make_user("asker@clinic.test", role="practice_admin", practice=practice)
    admin = app.test_client()
    admin.post("/login", data={"email": "asker@clinic.test", "password": PASSWORD})
    assert admin.post("/practice/requests", data={"note": "Our board wants it"}).status_code == 303
    overview = client.get("/support/").get_data(as_text=True)
    assert "Asking Clinic: require MFA" in overview and "Our board wants it" in overview
    req = db.session.scalar(select(RequirementRequest))
    no_note = client.post(f"/support/requests/{req.id}/decide", data={"note": "", "approve": "Approve"})
    assert no_note.status_code == 400 and "Give a note for the practice admin." in no_note.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(RequirementRequest, req.id).status == "pending"
    change_confirmed(client, f"/support/requests/{req.id}/decide", {"note": "Done, as discussed", "approve": "Approve"})
    db.session.expire_all()
    assert db.session.get(RequirementRequest, req.id).status == "approved"
    assert db.session.get(Practice, practice.id).mfa_required is True
    page = admin.get("/practice/")
    # The admin has no MFA, so the requirement now sends them to enrollment first.
    assert page.headers["Location"] == "/account/security"
    twice = client.post(f"/support/requests/{req.id}/decide", data={"note": "again", "decline": "Decline"})
    assert twice.status_code == 409 and "already decided" in twice.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(RequirementRequest, req.id).status == "approved"


def test_decline_leaves_the_requirement_alone(app, client, support, clock):
    practice = make_practice("Declined Clinic")
    admin_user = make_user("asker2@clinic.test", role="practice_admin", practice=practice)
    make_enrollment(admin_user, "email")
    from portal.enforcement import requirement

    req = requirement.make_request(admin_user, require=True, note="", now=clock.now())
    client.post(f"/support/requests/{req.id}/decide", data={"note": "Talk to your owner first", "decline": "Decline"})
    db.session.expire_all()
    assert db.session.get(Practice, practice.id).mfa_required is False
    assert db.session.get(RequirementRequest, req.id).status == "declined"


def test_support_audit_page_filters(client, support, clock):
    practice = make_practice("Audited")
    user = make_user("audited@clinic.test", practice=practice)
    page = client.get("/support/audit").get_data(as_text=True)
    assert "Support access confirmed" in page and "Logged in" in page
    filtered = client.get(f"/support/audit?event_type=login.succeeded&user={support.id}").get_data(as_text=True)
    table = filtered.split('id="audit-table"')[1]
    assert "Support access confirmed" not in table and "Logged in" in table
    for bad in ("user=abc", "from=notadate", "event_type=%3Cscript%3E", "before=-1", "practice=99999999999999999999"):
        assert client.get(f"/support/audit?{bad}").status_code == 200
    assert user.id


def test_audit_pages_are_keyset_paged(client, support, clock):
    from portal import audit

    for _ in range(60):
        audit.record("logout", actor=support, subject=support, now=clock.now())
    db.session.commit()
    first = client.get("/support/audit").get_data(as_text=True)
    assert "Older events" in first
    import re

    before = re.search(r'href="/support/audit\?before=(\d+)"', first).group(1)
    second = client.get(f"/support/audit?before={before}").get_data(as_text=True)
    ids_first = set(re.findall(r'id="event-(\d+)"', first))
    ids_second = set(re.findall(r'id="event-(\d+)"', second))
    assert ids_first and ids_second and not ids_first & ids_second


@pytest.mark.parametrize("overrides, forwarded, allowed", [
    ({"SUPPORT_ALLOWED_NETWORKS": ["10.0.0.0/8"]}, None, False),
    ({"SUPPORT_ALLOWED_NETWORKS": ["10.0.0.0/8"]}, "10.1.2.3", False),  # raw X-Forwarded-For is not trusted
    ({"SUPPORT_ALLOWED_NETWORKS": ["10.0.0.0/8"], "TRUSTED_PROXY_COUNT": 1}, "10.1.2.3", True),
    ({"SUPPORT_ALLOWED_NETWORKS": ["10.0.0.0/8"], "TRUSTED_PROXY_COUNT": 1}, "203.0.113.9", False),
    ({"SUPPORT_ALLOWED_NETWORKS": ["127.0.0.0/8"]}, None, True),
])
def test_support_network_allow_list(make_app, app, clock, overrides, forwarded, allowed):
    """Is the support area limited by client address, honouring only configured proxies?"""
    user = make_user("net-support@portal.test", role="support")
    secret = make_enrollment(user, "totp")
    restricted = make_app(**overrides)
    client = restricted.test_client()
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    client.post("/login", data={"email": "net-support@portal.test", "password": PASSWORD}, headers=headers)
    client.post("/login/code", data={"code": totp_now(secret, clock)}, headers=headers)
    response = client.get("/support/confirm", headers=headers)
    assert response.status_code == (200 if allowed else 404)


def test_bad_network_setting_refuses_to_start(make_app):
    with pytest.raises(RuntimeError, match="SUPPORT_ALLOWED_NETWORKS"):
        make_app(SUPPORT_ALLOWED_NETWORKS=["not-a-network"])


def test_support_user_search_escapes_wildcards(client, support):
    make_user("percent@example.test")
    html = client.get("/support/users?q=%25").get_data(as_text=True)
    assert "percent@example.test" not in html


def test_a_search_the_page_cannot_use_is_said_not_dropped(client, support):
    """A search with a NUL or a line break (PostgreSQL cannot take a NUL) is left out, and a
    long one cut, each with a note saying so; never a 500."""
    make_user("kline@example.test", display_name="Kim Kline")
    for unusable in ("kline\x00", "kl\nine", "\x7f"):
        response = client.get("/support/users", query_string={"q": unusable})
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        assert "The search holds characters no name or email has, so it was left out." in html
        assert "kline@example.test" not in html
    long = client.get("/support/users", query_string={"q": "kline@example.test" + " " * 90 + "x" * 10})
    html = long.get_data(as_text=True)
    assert long.status_code == 200 and "The search is longer than 100 characters: its first 100 were used." in html
    plain = client.get("/support/users", query_string={"q": "kline"}).get_data(as_text=True)
    assert "kline@example.test" in plain and 'id="search-notes"' not in plain



def test_everyone_else_gets_404_even_for_existing_ids(app, client, auth, clock):
    """With real ids in the URL, does the support area still not admit it exists?"""
    practice = make_practice("Id Clinic")
    target = make_user("target@id.test", practice=practice)
    make_enrollment(target, "email")
    make_user("nosy@id.test", role="practice_admin", practice=practice)
    auth.login("nosy@id.test", PASSWORD)
    for path in (f"/support/users/{target.id}", f"/support/practices/{practice.id}"):
        assert client.get(path).status_code == 404
    assert client.post(f"/support/users/{target.id}/clear-mfa", data={"reason": "x", "ticket": "y"}).status_code == 404
    assert db.session.scalar(select(func.count(MfaEnrollment.id))) == 1


def test_clear_voids_codes_already_sent(app, client, support, outbox, clock):
    """A code texted just before the clear: does it still complete a Log In afterwards?"""
    practice = make_practice("Void Clinic")
    user = make_user("void@clinic.test", practice=practice)
    make_enrollment(user, "sms", phone=SECRET_PHONE)
    victim = app.test_client()
    victim.post("/login", data={"email": "void@clinic.test", "password": PASSWORD})
    code = re.search(r"\b(\d{6})\b", outbox.last(SECRET_PHONE, "sms").body_text).group(1)
    client.post(f"/support/users/{user.id}/clear-mfa", data={"reason": "Lost phone", "ticket": "SUP-5"})
    from portal.models import MfaCode

    db.session.expire_all()
    assert all(row.voided_at is not None
               for row in db.session.scalars(select(MfaCode).where(MfaCode.user_id == user.id)))
    response = victim.post("/login/code", data={"code": code})
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert victim.get("/").status_code == 303


def test_support_confirmation_gets_a_new_session_id(app, auth, clock):
    from tests.conftest import session_cookie

    user = make_user("step-up@portal.test", role="support")
    secret = make_enrollment(user, "totp")
    client = app.test_client()
    client.post("/login", data={"email": "step-up@portal.test", "password": PASSWORD})
    client.post("/login/code", data={"code": totp_now(secret, clock)})
    before = session_cookie(client, app)
    clock.advance(seconds=30)
    client.post("/support/confirm", data={"password": PASSWORD, "code": totp_now(secret, clock)})
    assert session_cookie(client, app) != before
    assert client.get("/support/").status_code == 200


def test_wrong_password_at_confirmation_is_audited(client, auth, clock):
    user = make_user("audit-support@portal.test", role="support")
    secret = make_enrollment(user, "totp")
    auth.login_totp("audit-support@portal.test", PASSWORD, secret)
    client.post("/support/confirm", data={"password": "wrong wrong wrong", "code": "123456"})
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.event_type == "reauth.failed"))
    assert event is not None and event.subject_id == user.id and '"where":"support"' in event.detail


def test_search_finds_users_by_name_and_shows_role_practice_and_mfa(client, support):
    """Does one search box find a user by name, and show their role, practice and MFA state?"""
    practice = make_practice("Cedar Health")
    casey = make_user("c.k@cedar.test", practice=practice, display_name="Casey Kline", role="staff")
    make_enrollment(casey, "email")
    html = client.get("/support/users?q=kline").get_data(as_text=True)
    row = re.search(r"<tr><td><a href=\"/support/users/\d+\">c.k@cedar.test</a></td>(.*?)</tr>", html, re.S)
    assert row, html
    assert "Casey Kline" in row.group(1) and "Staff" in row.group(1) and "Cedar Health" in row.group(1)
    assert "Email" in row.group(1)


def test_support_unlocks_a_locked_account_with_a_reason(client, support, clock):
    """Can support end a lock early, with a reason that is audited, so the user can log in again?"""
    from datetime import timedelta

    from portal.models import User

    locked = make_user("locked@cedar.test", practice=make_practice("Cedar Two"))
    locked.password_locked_until = clock.now() + timedelta(minutes=10)
    locked.mfa_locked_until = clock.now() + timedelta(minutes=10)
    db.session.commit()
    page = client.get(f"/support/users/{locked.id}").get_data(as_text=True)
    assert 'id="unlock-form"' in page
    assert client.post(f"/support/users/{locked.id}/unlock", data={"reason": ""}).status_code == 400
    done = client.post(f"/support/users/{locked.id}/unlock", data={"reason": "Called back; it was them"})
    assert done.status_code == 303
    db.session.expire_all()
    user = db.session.get(User, locked.id)
    assert user.password_locked_until is None and user.mfa_locked_until is None
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.event_type == "support.unlocked"))
    assert event is not None and "Called back" in event.detail and event.subject_id == locked.id
    assert app_login(client.application, "locked@cedar.test") == "/"


def app_login(app, email):
    return app.test_client().post("/login", data={"email": email, "password": PASSWORD}).headers["Location"]
