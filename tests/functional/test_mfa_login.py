"""Password-then-code Log In with each method, and what an attacker meets on the way."""

import re

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import MfaEnrollment, User
from tests.conftest import session_cookie
from tests.factories import PASSWORD, make_enrollment, make_practice, make_user
from tests.functional.mfa_helpers import confirm_password, last_code, manual_key, totp_now
from tests.smtp_server import free_port

E164 = "+12025550143"
CODE_HTMX = {"HX-Request": "true", "HX-Target": "code-step"}
STATUS_HTMX = {"HX-Request": "true", "HX-Target": "code-status"}


@pytest.fixture
def sms_user(clock):
    user = make_user("sms@example.test", display_name="Sam Sms")
    make_enrollment(user, "sms", phone=E164)
    return user


@pytest.fixture
def email_user(clock):
    user = make_user("email@example.test", display_name="Emma Email")
    make_enrollment(user, "email")
    return user


@pytest.fixture
def totp_user(clock):
    user = make_user("totp@example.test", display_name="Tess Totp")
    return user, make_enrollment(user, "totp")


def wrong(code):
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_sms_login(client, auth, outbox, sms_user):
    """Password, then the texted code, opens the dashboard."""
    response = auth.login("sms@example.test", PASSWORD)
    assert response.headers["Location"] == "/login/code"
    assert client.get("/").status_code == 303  # not logged in yet
    page = client.get("/login/code").get_data(as_text=True)
    assert "(***) ***-0143" in page and E164 not in page
    assert "Didn't get a code?" in page and ">click here</button> to resend." in page
    assert "valid for five minutes" in page
    response = auth.enter_code(last_code(outbox, E164, "sms"))
    assert response.status_code == 303 and response.headers["Location"] == "/"
    assert "Welcome, Sam Sms." in client.get("/").get_data(as_text=True)


def test_email_login_with_htmx(client, auth, outbox, email_user):
    response = auth.login("email@example.test", PASSWORD)
    code = last_code(outbox, "email@example.test", "email")
    response = auth.enter_code(code, headers=CODE_HTMX)
    assert response.status_code == 204 and response.headers["HX-Redirect"] == "/"
    assert client.get("/").status_code == 200


def test_totp_login(client, auth, outbox, totp_user, clock):
    user, secret = totp_user
    auth.login("totp@example.test", PASSWORD)
    page = client.get("/login/code").get_data(as_text=True)
    assert "Open your authenticator app" in page
    assert "click here" not in page  # no resend for apps
    assert outbox.messages() == []
    assert auth.enter_code(totp_now(secret, clock)).headers["Location"] == "/"


def test_code_with_spaces_and_dash_is_accepted(client, auth, outbox, sms_user):
    auth.login("sms@example.test", PASSWORD)
    code = last_code(outbox, E164, "sms")
    assert auth.enter_code(f" {code[:3]}-{code[3:]} ").status_code == 303


@pytest.mark.parametrize("bad", ["12345", "1234567", "abcdef", "١٢٣٤٥٦", "12 34 5x", "", "1" * 5000])
def test_malformed_codes_get_a_clear_400(client, auth, outbox, sms_user, bad):
    """Is anything other than six ASCII digits refused with a message, never a 500?"""
    auth.login("sms@example.test", PASSWORD)
    response = auth.enter_code(bad)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Enter the 6-digit code" in html
    assert 'aria-describedby="code-error"' in html or "aria-invalid" in html


def test_wrong_code_is_refused_and_counted(client, auth, outbox, sms_user):
    auth.login("sms@example.test", PASSWORD)
    code = last_code(outbox, E164, "sms")
    response = auth.enter_code(wrong(code))
    assert response.status_code == 400
    assert "That code is not correct." in response.get_data(as_text=True)
    assert client.get("/").status_code == 303
    db.session.expire_all()
    assert db.session.get(User, sms_user.id).mfa_failed_count == 1


def test_wrong_code_htmx_swaps_the_form_with_the_error(client, auth, outbox, sms_user):
    auth.login("sms@example.test", PASSWORD)
    response = auth.enter_code("000000" if last_code(outbox, E164, "sms") != "000000" else "111111", headers=CODE_HTMX)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="code-step">')
    assert 'role="alert"' in html and "That code is not correct." in html


def test_expired_code_is_refused(client, auth, outbox, sms_user, clock):
    """Five minutes: accepted at 4:59, refused at 5:01."""
    auth.login("sms@example.test", PASSWORD)
    code = last_code(outbox, E164, "sms")
    clock.advance(minutes=5, seconds=1)
    response = auth.enter_code(code)
    assert response.status_code == 400
    assert "expired" in response.get_data(as_text=True)


def test_code_accepted_just_before_five_minutes(client, auth, outbox, sms_user, clock):
    auth.login("sms@example.test", PASSWORD)
    code = last_code(outbox, E164, "sms")
    clock.advance(minutes=4, seconds=59)
    assert auth.enter_code(code).status_code == 303


def test_resend_invalidates_the_old_code(client, auth, outbox, sms_user, clock):
    """Does "click here" send a new code and void the old one?"""
    auth.login("sms@example.test", PASSWORD)
    old = last_code(outbox, E164, "sms")
    clock.advance(seconds=31)
    response = client.post("/login/code/resend")
    assert response.status_code == 303
    assert "A new code was sent to (***) ***-0143." in client.get("/login/code").get_data(as_text=True)
    new = last_code(outbox, E164, "sms")
    assert len(outbox.messages(E164, "sms")) == 2
    if old != new:
        assert auth.enter_code(old).status_code == 400
    assert auth.enter_code(new).status_code == 303


def test_resend_with_htmx_updates_the_live_region(client, auth, outbox, email_user, clock):
    auth.login("email@example.test", PASSWORD)
    clock.advance(seconds=31)
    response = client.post("/login/code/resend", headers=STATUS_HTMX)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="code-status">')
    assert '<div id="code-status-message" hx-swap-oob="innerHTML">' in html  # the page's lasting live region
    assert "A new code was sent to e***l@example.test" in html
    page = client.get("/login/code").get_data(as_text=True)
    assert 'role="status" aria-live="polite" id="code-status-message"' in page
    assert len(outbox.messages("email@example.test")) == 2


def test_resend_too_soon_is_throttled_with_retry_after(client, auth, outbox, email_user, clock):
    """Within 30 seconds, does click here say when it will work, send nothing, and give 429?"""
    auth.login("email@example.test", PASSWORD)
    response = client.post("/login/code/resend", headers=STATUS_HTMX)
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert "You can ask for a new one in" in response.get_data(as_text=True)
    assert len(outbox.messages("email@example.test")) == 1


def test_fifth_wrong_try_kills_the_code(client, auth, outbox, sms_user):
    """After five wrong tries, is even the right code refused, with a hint to resend?"""
    auth.login("sms@example.test", PASSWORD)
    code = last_code(outbox, E164, "sms")
    for _ in range(5):
        auth.enter_code(wrong(code))
    response = auth.enter_code(code)
    assert response.status_code == 400
    assert "tried too many times" in response.get_data(as_text=True)
    assert "click here" in response.get_data(as_text=True)
    assert client.get("/").status_code == 303


def test_replayed_totp_step_is_refused(client, auth, totp_user, clock):
    """Can an authenticator code that already logged in be used again (same 30 s step)?"""
    user, secret = totp_user
    code = totp_now(secret, clock)
    auth.login("totp@example.test", PASSWORD)
    assert auth.enter_code(code).status_code == 303
    other = client.application.test_client()
    other.post("/login", data={"email": "totp@example.test", "password": PASSWORD})
    response = other.post("/login/code", data={"code": code})
    assert response.status_code == 400
    assert "already used" in response.get_data(as_text=True)
    clock.advance(seconds=30)
    assert other.post("/login/code", data={"code": totp_now(secret, clock)}).status_code == 303


def test_totp_from_two_steps_away_is_refused(client, auth, totp_user, clock):
    import pyotp

    user, secret = totp_user
    auth.login("totp@example.test", PASSWORD)
    old = pyotp.TOTP(secret).at(clock.now(), counter_offset=-2)
    future = pyotp.TOTP(secret).at(clock.now(), counter_offset=2)
    current = totp_now(secret, clock)
    for code in {old, future} - {current}:
        assert auth.enter_code(code).status_code == 400


def test_session_id_changes_at_password_and_at_code(app, client, auth, outbox, sms_user):
    client.get("/login")
    client.post("/login", data={"email": "nobody@example.test", "password": "x" * 12})
    anonymous = session_cookie(client, app)
    auth.login("sms@example.test", PASSWORD)
    pending = session_cookie(client, app)
    auth.enter_code(last_code(outbox, E164, "sms"))
    full = session_cookie(client, app)
    assert (len({anonymous, pending, full} - {None}) == len([c for c in (anonymous, pending, full) if c])
            and pending != full)


def test_pending_login_reaches_nothing_but_the_code_page(app, client, auth, sms_user):
    """With only the password given, is every protected route closed (HTMX included)?"""
    auth.login("sms@example.test", PASSWORD)
    allowed = {"auth.login", "auth.verify_code", "auth.resend_code", "static"}
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if getattr(view, "is_public", False) or rule.endpoint in allowed or "<" in rule.rule:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if rule.endpoint.startswith("support."):
                assert client.open(rule.rule, method=method).status_code == 404, rule.rule
                continue
            response = client.open(rule.rule, method=method)
            assert response.status_code == 303 and response.headers["Location"].startswith("/login"), (
                rule.rule, method)
            htmx = client.open(rule.rule, method=method, headers={"HX-Request": "true"})
            assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/login"), (rule.rule, method)
            assert b"Welcome" not in htmx.data


def test_pending_login_dies_after_ten_minutes(client, auth, outbox, sms_user, clock):
    """Do resends keep a half-finished Log In alive forever?"""
    auth.login("sms@example.test", PASSWORD)
    for _ in range(3):
        clock.advance(minutes=3)
        client.post("/login/code/resend")
    code = last_code(outbox, E164, "sms")
    clock.advance(minutes=1, seconds=1)
    response = auth.enter_code(code)
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert "took too long" in client.get("/login").get_data(as_text=True)
    assert client.get("/").status_code == 303


def test_code_page_without_a_password_goes_to_log_in(client):
    assert client.get("/login/code").headers["Location"] == "/login"
    assert client.post("/login/code", data={"code": "123456"}).headers["Location"] == "/login"
    assert client.post("/login/code/resend").headers["Location"] == "/login"


def test_code_from_another_session_is_refused(app, client, auth, outbox, sms_user, clock):
    """Is a code bound to the Log In that asked for it?"""
    auth.login("sms@example.test", PASSWORD)
    code_a = last_code(outbox, E164, "sms")
    other = app.test_client()
    clock.advance(seconds=31)
    other.post("/login", data={"email": "sms@example.test", "password": PASSWORD})
    assert other.post("/login/code", data={"code": code_a}).status_code == 400


@pytest.mark.parametrize("target", ["https://evil.test/", "//evil.test", "/\\evil.test"])
def test_open_redirect_next_is_ignored_after_the_code(client, auth, outbox, sms_user, target):
    client.post("/login", query_string={"next": target}, data={"email": "sms@example.test", "password": PASSWORD})
    response = auth.enter_code(last_code(outbox, E164, "sms"))
    assert response.headers["Location"] == "/"


def test_local_next_is_honoured_after_the_code(client, auth, outbox, sms_user):
    client.post("/login?next=/account/security", data={"email": "sms@example.test", "password": PASSWORD})
    response = auth.enter_code(last_code(outbox, E164, "sms"))
    assert response.headers["Location"] == "/account/security"


def test_email_delivery_failure_gives_a_clear_page(app, make_app, clock):
    """When the mail server is down, does Log In show a retry message instead of a 500?"""
    user = make_user("down@example.test")
    make_enrollment(user, "email")
    broken = make_app(MAIL_TRANSPORT="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port(), MAIL_SUPPRESS_SEND=False,
                      MAIL_TIMEOUT_SECONDS=2)
    client = broken.test_client()
    response = client.post("/login", data={"email": "down@example.test", "password": PASSWORD})
    assert response.headers["Location"] == "/login/code"
    page = client.get("/login/code")
    assert page.status_code == 200
    assert "We could not send your code just now" in page.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, user.id).mfa_failed_count == 0


def test_code_email_is_delivered_over_real_smtp(app, make_app, clock):
    """Does the code email really leave through SMTP with the right subject and no code in it?"""
    from tests.smtp_server import SMTPServer

    user = make_user("smtp-code@example.test")
    make_enrollment(user, "email")
    with SMTPServer() as smtp:
        client = make_app(MAIL_TRANSPORT="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port,
                          MAIL_SUPPRESS_SEND=False).test_client()
        client.post("/login", data={"email": "smtp-code@example.test", "password": PASSWORD})
        message = smtp.messages[0]["message"]
    assert message["Subject"] == "Your verification code"
    text = message.get_body(preferencelist=("plain",)).get_content()
    code = re.search(r"\b(\d{6})\b", text).group(1)
    assert code not in message["Subject"]
    assert "http" not in text
    assert "expires in 5 minutes" in text and "Never share this code" in text
    assert client.post("/login/code", data={"code": code}).status_code == 303


def test_forced_enrollment_in_a_practice_that_requires_mfa(client, auth, outbox, clock):
    """In "Required MFA Clinic", is a user without MFA held at Choose MFA Device until enrolled?"""
    practice = make_practice("Required MFA Clinic", mfa_required=True)
    make_user("provider@required.test", practice=practice)
    response = auth.login("provider@required.test", PASSWORD)
    assert response.headers["Location"] == "/account/security"
    html = client.get("/account/security").get_data(as_text=True)
    assert "Choose MFA Device:" in html  # the password just entered counts as re-entry
    assert "Your practice requires multi-factor authentication" in html
    app = client.application
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if getattr(view, "is_public", False) or rule.endpoint == "static" or "<" in rule.rule:
            continue
        if rule.endpoint.startswith("security.") or rule.endpoint == "auth.logout":
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if rule.endpoint.startswith("support."):
                assert client.open(rule.rule, method=method).status_code == 404, rule.rule
                continue
            blocked = client.open(rule.rule, method=method)
            assert blocked.status_code == 303 and blocked.headers["Location"] == "/account/security", rule.rule
            htmx = client.open(rule.rule, method=method, headers={"HX-Request": "true"})
            assert htmx.headers["HX-Redirect"] == "/account/security", rule.rule

    chosen = client.post("/account/security/device", data={"device": "totp"})
    key = manual_key(client.get(chosen.headers["Location"]).get_data(as_text=True))
    response = client.post("/account/security/verify", data={"code": totp_now(key, clock)})
    assert response.headers["Location"] == "/"
    assert client.get("/").status_code == 200


def test_forced_enrollment_with_email_finishes_with_an_emailed_code(client, auth, outbox, clock):
    """Choosing Email while MFA is required: is the login finished only by the emailed code?"""
    practice = make_practice("Required MFA Clinic", mfa_required=True)
    make_user("provider@required.test", practice=practice)
    auth.login("provider@required.test", PASSWORD)
    response = client.post("/account/security/device", data={"device": "email"})
    assert response.headers["Location"] == "/login/code"
    assert client.get("/").status_code == 303
    code = last_code(outbox, "provider@required.test", "email")
    assert auth.enter_code(code).headers["Location"] == "/"
    assert client.get("/").status_code == 200


def test_enrolled_user_of_required_practice_logs_in_normally(client, auth, outbox, clock):
    practice = make_practice("Required MFA Clinic", mfa_required=True)
    user = make_user("ok@required.test", practice=practice)
    secret = make_enrollment(user, "totp")
    assert auth.login_totp("ok@required.test", PASSWORD, secret).headers["Location"] == "/"
    assert client.get("/").status_code == 200


def test_wrong_password_sends_no_code(client, auth, outbox, sms_user):
    """Are codes sent only after a correct password?"""
    auth.login("sms@example.test", "not the password!!")
    assert outbox.messages() == []


def test_method_is_not_revealed_before_the_password(client, sms_user):
    html = client.get("/login").get_data(as_text=True)
    assert "0143" not in html and "SMS" not in html


def test_enrollment_counts_only_one_method(client, auth, outbox, clock):
    user = make_user("one@example.test")
    make_enrollment(user, "email")
    assert db.session.scalar(select(db.func.count(MfaEnrollment.id)).where(MfaEnrollment.user_id == user.id)) == 1


def test_login_right_after_setting_up_sms_gets_its_code(client, auth, outbox, clock):
    """Log Out straight after Verify, Log In again: is a login code sent (no cooldown trap)?"""
    make_user("fresh-sms@example.test")
    auth.login("fresh-sms@example.test", PASSWORD)
    confirm_password(client, PASSWORD)
    client.post("/account/security/phone", data={"phone": "(202) 555-0143"})
    client.post("/account/security/verify", data={"code": last_code(outbox, E164, "sms")})
    auth.logout()
    clock.advance(seconds=5)
    auth.login("fresh-sms@example.test", PASSWORD)
    page = client.get("/login/code").get_data(as_text=True)
    assert "We sent a 6-digit code by text message" in page and "A code was just sent" not in page
    assert len(outbox.messages(E164, "sms")) == 2
    assert auth.enter_code(last_code(outbox, E164, "sms")).headers["Location"] == "/"


def test_code_page_never_claims_a_code_was_sent_when_none_was(client, auth, outbox, email_user, clock):
    """Logging in twice within 30 s: does the second page admit no code is waiting yet?"""
    auth.login("email@example.test", PASSWORD)
    clock.advance(seconds=5)
    auth.logout()
    for _message in outbox.messages():
        pass
    auth.login("email@example.test", PASSWORD)
    page = client.get("/login/code").get_data(as_text=True)
    assert "We sent a 6-digit code" in page  # a new sign-in gets its own code
    assert len(outbox.messages("email@example.test")) == 2


def test_htmx_resend_replaces_the_old_error_with_a_fresh_form(client, auth, outbox, email_user, clock):
    auth.login("email@example.test", PASSWORD)
    auth.enter_code("999999", headers=CODE_HTMX)
    clock.advance(seconds=31)
    html = client.post("/login/code/resend", headers=STATUS_HTMX).get_data(as_text=True)
    assert '<div id="code-step" hx-swap-oob="true">' in html
    fragment = html[html.index('<div id="code-step"'):]
    assert "not correct" not in fragment and 'value="999999"' not in fragment


def test_htmx_post_after_session_ended_goes_to_log_in(make_app, app, clock):
    """A click in an old tab after the session ended: Log In, not a CSRF error card."""
    strict = make_app(WTF_CSRF_ENABLED=True)
    client = strict.test_client()
    response = client.post("/account/security/device", data={"device": "email"},
                           headers={"HX-Request": "true", "HX-Target": "security-panel"})
    assert response.status_code == 400 and response.headers["HX-Redirect"] == "/login"


def test_cancel_ends_the_half_finished_log_in(client, auth, outbox, sms_user):
    """Does "Cancel and go back to Log In" really end the pending sign-in?"""
    auth.login("sms@example.test", PASSWORD)
    code = last_code(outbox, E164, "sms")
    page = client.get("/login/code").get_data(as_text=True)
    assert "Cancel and go back to Log In" in page
    assert client.post("/logout").headers["Location"].startswith("/login")
    assert client.get("/login/code").headers["Location"] == "/login"
    assert auth.enter_code(code).headers["Location"] == "/login"


def test_password_reset_does_not_bypass_mfa(client, auth, outbox, sms_user):
    """After resetting the password, is the code still asked for at Log In?"""
    client.post("/forgot-password", data={"email": "sms@example.test"})
    link = outbox.link("sms@example.test")
    client.post(link, data={"password": "a whole new passphrase", "confirm": "a whole new passphrase"})
    response = auth.login("sms@example.test", "a whole new passphrase")
    assert response.headers["Location"] == "/login/code"
    assert client.get("/").status_code == 303


def test_a_client_supplied_time_is_ignored(client, auth, totp_user, clock):
    """Can a client make an old authenticator code valid by claiming another time?"""
    import pyotp

    user, secret = totp_user
    auth.login("totp@example.test", PASSWORD)
    old = pyotp.TOTP(secret).at(clock.now(), counter_offset=-5)
    response = client.post("/login/code", data={"code": old, "time": str(int(clock.now().timestamp()) - 150)},
                           headers={"Date": "Mon, 01 Jan 2001 00:00:00 GMT", "X-Client-Time": "978307200"})
    assert response.status_code == 400


def test_wrong_authenticator_codes_count_toward_the_lock(client, auth, totp_user, clock):
    """Do wrong app codes, like wrong texted codes, lock the account at 10?"""
    user, secret = totp_user
    auth.login("totp@example.test", PASSWORD)
    current = totp_now(secret, clock)
    statuses = [auth.enter_code(wrong(current)).status_code for _ in range(10)]
    assert statuses[-1] == 429 and set(statuses[:-1]) == {400}
    assert auth.enter_code(current).status_code == 429
