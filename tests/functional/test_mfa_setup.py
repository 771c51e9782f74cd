"""Account Settings | Security: each procedure of the specification, step by step.

Every flow runs twice: as plain forms (POST -> 303 -> GET) and as HTMX swaps of the panel.
"""

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import MfaEnrollment, MfaPendingEnrollment, User
from tests.factories import PASSWORD, make_enrollment, make_user
from tests.functional.mfa_helpers import HTMX, confirm_password, last_code, manual_key, totp_now

PHONE = "(202) 555-0143"
E164 = "+12025550143"


@pytest.fixture(params=["plain", "htmx"])
def mode(request):
    return request.param


def post(client, mode, url, data=None):
    """Submit as the page would: a form post, or an HTMX request aimed at the panel."""
    headers = HTMX if mode == "htmx" else {}
    return client.post(url, data=data or {}, headers=headers)


def enrollment_of(user_id):
    db.session.expire_all()
    return db.session.scalar(select(MfaEnrollment).where(MfaEnrollment.user_id == user_id))


@pytest.fixture
def clinician(client, auth, clock):
    user = make_user("casey@example.test", display_name="Casey Clinician")
    auth.login("casey@example.test", PASSWORD)
    return user


def open_security(client, clock):
    page = client.get("/account/security")
    assert page.status_code == 200
    return page.get_data(as_text=True)


def test_security_tab_asks_for_the_password_first(client, clinician, clock):
    """Does the Security tab hide everything until the password is re-entered?"""
    html = open_security(client, clock)
    assert "Re-enter your password" in html
    assert "Choose MFA Device:" not in html
    wrong = confirm_password(client, "not my password")
    assert wrong.status_code == 401
    assert "That password is not correct." in wrong.get_data(as_text=True)
    assert confirm_password(client, PASSWORD).status_code == 303
    html = open_security(client, clock)
    assert "Choose MFA Device:" in html
    assert "MFA is <strong>off</strong>" in html


def test_chooser_lists_authenticator_apps_first_and_explains_why(client, clinician, clock):
    """Are the three devices offered, Authenticator Apps first, with one sentence on why?"""
    confirm_password(client, PASSWORD)
    html = open_security(client, clock)
    apps, sms, email = (html.index(f'id="device-{m}"') for m in ("totp", "sms", "email"))
    assert apps < sms < email
    assert "Authenticator Apps is the strongest choice" in html
    assert "Only support can turn MFA off" in html


def test_sms_procedure(client, clinician, outbox, clock, mode):
    """SMS: select SMS, Save Phone Number, Enter the code provided, Verify -> dashboard."""
    confirm_password(client, PASSWORD)
    response = post(client, mode, "/account/security/device", {"device": "sms"})
    html = response.get_data(as_text=True) if mode == "htmx" else open_security_step(client, response)
    assert 'for="phone">Phone Number</label>' in html
    assert 'value="Save Phone Number"' in html

    response = post(client, mode, "/account/security/phone", {"phone": PHONE})
    html = response.get_data(as_text=True) if mode == "htmx" else open_security_step(client, response)
    assert "Enter the code provided" in html and 'value="Verify"' in html
    assert "(***) ***-0143" in html
    assert 'autocomplete="one-time-code"' in html and 'inputmode="numeric"' in html
    message = outbox.last(E164, "sms")
    assert "expires in 5 minutes" in message.body_text and "Never share this code" in message.body_text
    assert enrollment_of(clinician.id) is None  # not active until verified

    response = post(client, mode, "/account/security/verify", {"code": last_code(outbox, E164, "sms")})
    if mode == "htmx":
        assert response.status_code == 204 and response.headers["HX-Redirect"] == "/"
    else:
        assert response.status_code == 303 and response.headers["Location"] == "/"
    dashboard = client.get("/").get_data(as_text=True)
    assert "Multi-factor authentication is on: SMS to (***) ***-0143." in dashboard
    enrollment = enrollment_of(clinician.id)
    assert enrollment.method == "sms" and enrollment.phone_e164 == E164
    assert "Multi-factor authentication is on" in outbox.last("casey@example.test", "email").subject


def open_security_step(client, response):
    assert response.status_code == 303, response.get_data(as_text=True)
    return client.get(response.headers["Location"]).get_data(as_text=True)


def test_email_procedure(client, auth, clinician, outbox, clock, mode):
    """Email: selecting Email enables it at once; the next Log In emails a code."""
    confirm_password(client, PASSWORD)
    response = post(client, mode, "/account/security/device", {"device": "email"})
    assert response.status_code in (204, 303)
    html = open_security(client, clock)
    assert "MFA is <strong>on</strong>: Email to c***y@example.test" in html
    assert enrollment_of(clinician.id).method == "email"
    assert 'name="email"' not in html  # no field for another address
    outbox.messages("casey@example.test")  # the "MFA is on" notice (queued) arrives before the next Log In

    auth.logout()
    response = auth.login("casey@example.test", PASSWORD)
    assert response.headers["Location"] == "/login/code"
    page = client.get("/login/code").get_data(as_text=True)
    assert "Enter the code provided" in page and "c***y@example.test" in page
    message = outbox.last("casey@example.test", "email")
    assert message.subject == "Your verification code"
    code = last_code(outbox, "casey@example.test", "email")
    assert code not in message.subject
    response = auth.enter_code(code)
    assert response.status_code == 303 and response.headers["Location"] == "/"
    assert "Welcome, Casey Clinician." in client.get("/").get_data(as_text=True)


def test_authenticator_procedure(client, clinician, clock, mode):
    """Authenticator Apps: QR code and manual key, Continue, Enter the code provided, Verify."""
    confirm_password(client, PASSWORD)
    response = post(client, mode, "/account/security/device", {"device": "totp"})
    html = response.get_data(as_text=True) if mode == "htmx" else open_security_step(client, response)
    assert "<svg" in html and 'aria-label="QR code for your authenticator app"' in html
    key = manual_key(html)
    assert len(key) >= 32  # 160 bits in base32
    assert enrollment_of(clinician.id) is None
    # The secret does not change between showing the QR code and verifying.
    assert manual_key(open_security(client, clock)) == key

    if mode == "htmx":
        html = client.get("/account/security/app/continue", headers=HTMX).get_data(as_text=True)
    else:
        html = client.get("/account/security/app/continue").get_data(as_text=True)
    assert "Enter the code provided" in html and 'value="Verify"' in html
    assert "manual-key" not in html

    response = post(client, mode, "/account/security/verify", {"code": totp_now(key, clock)})
    assert response.status_code in (204, 303)
    enrollment = enrollment_of(clinician.id)
    assert enrollment.method == "totp"
    assert key not in enrollment.totp_secret  # stored encrypted
    # Never shown again once active.
    assert "manual-key" not in open_security(client, clock)


def test_secret_pages_are_not_cached(client, clinician, clock):
    confirm_password(client, PASSWORD)
    client.post("/account/security/device", data={"device": "totp"})
    response = client.get("/account/security?device=totp&step=totp_qr")
    assert response.headers["Cache-Control"] == "no-store"
    assert 'hx-history="false"' in response.get_data(as_text=True)


def test_each_attempt_gets_a_new_secret(client, clinician, clock):
    confirm_password(client, PASSWORD)
    first = manual_key(open_security_step(client, client.post("/account/security/device", data={"device": "totp"})))
    second = manual_key(open_security_step(client, client.post("/account/security/device", data={"device": "totp"})))
    assert first != second


@pytest.mark.parametrize("raw, message", [
    ("+44 20 7946 0958", "Only US phone numbers"),
    ("+1 800 555 0199", "Toll-free"),
    ("+1 416 555 0199", "outside the US"),
    ("555-1234", "valid US phone number"),
    ("not a number", "US mobile number"),
    ("9" * 60, "US phone number"),
])
def test_non_us_and_malformed_numbers_are_refused(client, clinician, outbox, clock, mode, raw, message):
    """Does a foreign, toll-free or malformed number get a clear message and no text?"""
    confirm_password(client, PASSWORD)
    response = post(client, mode, "/account/security/phone", {"phone": raw})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert 'aria-invalid="true"' in response.get_data(as_text=True)
    assert outbox.messages(channel="sms") == []
    assert db.session.scalar(select(MfaPendingEnrollment)) is None


@pytest.mark.parametrize("raw", ["(202) 555-0143", "202-555-0143", "+1 202 555 0143", "2025550143"])
def test_common_us_formats_are_accepted(client, clinician, outbox, clock, raw):
    confirm_password(client, PASSWORD)
    assert client.post("/account/security/phone", data={"phone": raw}).status_code == 303
    assert outbox.last(E164, "sms")


def test_unverified_email_cannot_choose_email(client, auth, clock):
    """Is a user whose email is not verified told why Email is unavailable?"""
    make_user("unverified@example.test", verified=False)
    auth.login("unverified@example.test", PASSWORD)
    confirm_password(client, PASSWORD)
    assert "Email is not available until your login email address is verified." in open_security(client, clock)
    response = client.post("/account/security/device", data={"device": "email"})
    assert response.status_code == 400
    assert "has not been verified" in response.get_data(as_text=True)
    assert db.session.scalar(select(MfaEnrollment)) is None


def test_stale_password_confirmation_is_asked_again(client, clinician, outbox, clock):
    """After 10 minutes, is every MFA change refused until the password is re-entered?"""
    confirm_password(client, PASSWORD)
    clock.advance(minutes=10, seconds=1)
    assert "Re-enter your password" in open_security(client, clock)
    for url, data in [
        ("/account/security/device", {"device": "email"}),
        ("/account/security/phone", {"phone": PHONE}),
        ("/account/security/verify", {"code": "123456"}),
        ("/account/security/phone/resend", {}),
    ]:
        response = client.post(url, data=data)
        assert response.status_code == 303 and response.headers["Location"] == "/account/security", url
        htmx = client.post(url, data=data, headers=HTMX)
        assert htmx.status_code == 401 and "Re-enter your password" in htmx.get_data(as_text=True)
    assert enrollment_of(clinician.id) is None
    assert outbox.messages(channel="sms") == []


def test_freshness_is_checked_on_the_post_not_only_the_page(client, clinician, outbox, clock):
    """Does a page loaded while fresh still let a POST through after the window closed?"""
    confirm_password(client, PASSWORD)
    client.post("/account/security/phone", data={"phone": PHONE})
    code = last_code(outbox, E164, "sms")
    clock.advance(minutes=10, seconds=1)
    assert client.post("/account/security/verify", data={"code": code}).status_code == 303
    assert enrollment_of(clinician.id) is None


def test_switching_keeps_the_old_method_until_the_new_one_is_verified(client, auth, outbox, clock):
    """While a switch to SMS is half done, does the old authenticator still log in?"""
    user = make_user("switch@example.test")
    secret = make_enrollment(user, "totp")
    auth.login_totp("switch@example.test", PASSWORD, secret)
    confirm_password(client, PASSWORD)
    client.post("/account/security/phone", data={"phone": PHONE})
    wrong = client.post("/account/security/verify", data={"code": "000000"})
    assert wrong.status_code == 400
    assert enrollment_of(user.id).method == "totp"

    other = client.application.test_client()
    other.post("/login", data={"email": "switch@example.test", "password": PASSWORD})
    clock.advance(seconds=30)
    assert other.post("/login/code", data={"code": totp_now(secret, clock)}).status_code == 303

    client.post("/account/security/verify", data={"code": last_code(outbox, E164, "sms")})
    enrollment = enrollment_of(user.id)
    assert enrollment.method == "sms"
    assert db.session.scalar(select(db.func.count(MfaEnrollment.id))) == 1
    notice = outbox.last("switch@example.test", "email")
    assert "changed from Authenticator Apps to SMS" in notice.body_text
    assert "If this wasn't you" in notice.body_text
    # The switch ended other sessions, and the old app no longer works.
    assert other.get("/").status_code == 303
    other.post("/login", data={"email": "switch@example.test", "password": PASSWORD})
    clock.advance(seconds=30)
    response = other.post("/login/code", data={"code": totp_now(secret, clock)})
    assert response.status_code == 400


def test_no_route_turns_mfa_off(app):
    """Is there any URL a user could call to disable or remove their own MFA? (Only the
    support area may clear MFA; it answers 404 to everyone else, see the support tests.)"""
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("support."):
            continue
        for word in ("disable", "remove", "delete", "turn-off", "clear", "recover", "off"):
            assert word not in rule.rule, rule.rule


def test_device_value_is_allow_listed(client, clinician, clock):
    confirm_password(client, PASSWORD)
    for value in ("none", "off", "", "voice", "totp "):
        response = client.post("/account/security/device", data={"device": value})
        assert response.status_code == 400
        assert "Choose SMS, Authenticator Apps or Email." in response.get_data(as_text=True)
    assert enrollment_of(clinician.id) is None


def test_support_staff_may_only_use_authenticator_apps(client, auth, clock):
    make_user("support@example.test", role="support")
    auth.login("support@example.test", PASSWORD)
    html = open_security(client, clock)  # forced enrollment: fresh from the password
    assert 'id="device-totp"' in html and 'id="device-sms"' not in html and 'id="device-email"' not in html
    for device in ("sms", "email"):
        response = client.post("/account/security/device", data={"device": device})
        assert response.status_code == 403
        assert "Support staff must use Authenticator Apps." in response.get_data(as_text=True)


def test_pending_secret_expires_after_ten_minutes(client, clinician, clock):
    confirm_password(client, PASSWORD)
    key = manual_key(open_security_step(client, client.post("/account/security/device", data={"device": "totp"})))
    clock.advance(minutes=9)
    confirm_password(client, PASSWORD)
    clock.advance(minutes=1, seconds=1)
    response = client.post("/account/security/verify", data={"code": totp_now(key, clock)})
    assert response.status_code == 400
    assert "longer than 10 minutes" in response.get_data(as_text=True)
    assert enrollment_of(clinician.id) is None


def test_dashboard_notice_for_users_without_mfa(client, clinician, clock):
    """Does the dashboard point a user without MFA to Account Settings | Security?"""
    html = client.get("/").get_data(as_text=True)
    assert 'id="mfa-notice"' in html and 'href="/account/security"' in html


def test_account_setup_offers_no_mfa(client, clock, outbox):
    """New users are never offered MFA during account setup (invitation page)."""
    from portal.accounts import invitations

    admin = make_user("admin@example.test", role="practice_admin")
    invitations.invite(admin=admin, email="new@example.test", display_name="New", role="staff", now=clock.now())
    html = client.get(outbox.link("new@example.test")).get_data(as_text=True)
    assert "MFA" not in html and "Choose MFA Device" not in html


def test_user_model_has_mfa_relationship(app):
    assert hasattr(User, "mfa")


def test_support_sees_wording_for_support_not_a_practice(client, auth, clock):
    make_user("words@portal.test", role="support")
    auth.login("words@portal.test", PASSWORD)
    html = open_security(client, clock)
    assert "Your role requires multi-factor authentication" in html
    assert "Your practice requires" not in html
    assert "another member of support can clear it" in html
    assert html.count("requires multi-factor authentication") == 1


def test_panels_move_focus_to_new_content(client, clinician, clock):
    """After an HTMX swap, is focus placed on the new content (not lost to the page)?"""
    html = client.post("/account/security/confirm-password", data={"password": PASSWORD},
                       headers=HTMX).get_data(as_text=True)
    assert 'id="mfa-heading" tabindex="-1" autofocus' in html
    html = client.post("/account/security/device", data={"device": "totp"}, headers=HTMX).get_data(as_text=True)
    assert 'id="device-heading"' in html and "autofocus" in html[html.index("device-panel"):]


def test_switch_away_from_sms_texts_the_old_number(client, auth, outbox, clock):
    """If someone switches my SMS to their own app, does my phone hear about it?"""
    user = make_user("texted@example.test")
    make_enrollment(user, "sms", phone=E164)
    auth.login("texted@example.test", PASSWORD)
    auth.enter_code(last_code(outbox, E164, "sms"))
    confirm_password(client, PASSWORD)
    client.post("/account/security/device", data={"device": "email"})
    notice = outbox.last(E164, "sms").body_text
    assert "no longer receives your Log In codes" in notice and "contact support" in notice
    assert not any(ch.isdigit() for ch in notice.split(":", 1)[1])  # no code in the notice


def test_no_code_or_secret_leaks_into_urls_headers_cookies_or_logs(app, client, auth, outbox, clock, caplog):
    """Across SMS setup and an authenticator setup: any code or secret in a URL, header, cookie or log?"""
    import logging

    caplog.set_level(logging.DEBUG)
    make_user("leak@example.test")
    seen = []

    def keep(response):
        seen.append(response)
        return response

    keep(auth.login("leak@example.test", PASSWORD))
    keep(confirm_password(client, PASSWORD))
    keep(client.post("/account/security/phone", data={"phone": "(202) 555-0143"}))
    code = last_code(outbox, E164, "sms")
    keep(client.post("/account/security/verify", data={"code": code}))
    keep(confirm_password(client, PASSWORD))
    page = keep(client.post("/account/security/device", data={"device": "totp"}, headers=HTMX))
    key = manual_key(page.get_data(as_text=True))
    keep(client.post("/account/security/verify", data={"code": totp_now(key, clock)}))
    cookies = " ".join(f"{c.key}={c.value}" for c in client._cookies.values())
    for response in seen:
        headers = " ".join(f"{k}: {v}" for k, v in response.headers.items())
        for secret in (code, key, PASSWORD):
            assert secret not in headers
    for secret in (code, key, PASSWORD):
        assert secret not in cookies
        assert secret not in caplog.text


def test_every_429_on_the_security_tab_says_when_to_retry(client, clinician, outbox, clock, mode):
    """Resending too soon while setting up SMS: a 429 with Retry-After, plain or HTMX."""
    confirm_password(client, PASSWORD)
    client.post("/account/security/phone", data={"phone": PHONE})
    response = post(client, mode, "/account/security/phone/resend")
    if mode == "htmx":
        assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
        assert "You can ask for a new one in" in response.get_data(as_text=True)
    else:
        assert response.status_code == 303
        assert "You can ask for a new one in" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert len(outbox.messages(E164, "sms")) == 1


def test_password_reentry_renews_the_session_and_failures_are_audited(app, client, clinician, clock):
    from portal.models import AuditEvent
    from tests.conftest import session_cookie

    confirm_password(client, "not my password at all")
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.event_type == "reauth.failed"))
    assert event is not None and '"where":"security"' in event.detail and event.subject_id == clinician.id
    before = session_cookie(client, app)
    confirm_password(client, PASSWORD)
    assert session_cookie(client, app) != before
    db.session.expire_all()
    success = db.session.scalar(select(AuditEvent).where(AuditEvent.event_type == "reauth.succeeded"))
    assert success is not None and success.subject_id == clinician.id


def test_database_errors_never_echo_values_into_logs(app, caplog):
    """A failed write: does the error (and so the log) carry the phone number being written?"""
    import logging

    from sqlalchemy.exc import IntegrityError

    caplog.set_level(logging.DEBUG)
    user = make_user("echo@example.test")
    db.session.add(MfaEnrollment(user_id=user.id, method="sms", phone_e164="+12025550199"))
    db.session.add(MfaEnrollment(user_id=user.id, method="sms", phone_e164="+12025550199"))
    with pytest.raises(IntegrityError) as error:
        db.session.commit()
    db.session.rollback()
    assert "+12025550199" not in str(error.value)
