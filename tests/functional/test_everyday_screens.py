"""What clinicians and staff read on the screens they use daily: Choose MFA Device, the
authenticator set-up on a phone, "click here" and its wait, the code page's lines, the wording."""

from __future__ import annotations

import re

from tests.factories import PASSWORD, make_enrollment, make_user
from tests.functional.mfa_helpers import HTMX, confirm_password


def _security(client, email="daily@example.test", method=None):
    user = make_user(email)
    if method:
        make_enrollment(user, method)
    client.post("/login", data={"email": email, "password": PASSWORD})
    if method:
        return user
    confirm_password(client, PASSWORD)
    return user


def test_choose_mfa_device_says_what_each_option_does_and_marks_the_current_one(client, outbox):
    """Does each option say in one line what happens, with a Current badge and the one being set up marked?"""
    _security(client)
    client.post("/account/security/device", data={"device": "email"}, headers=HTMX)
    html = client.get("/account/security").get_data(as_text=True)
    assert "Turns on at once; codes go to your login email." in html
    assert "We text a code to a US number you verify." in html
    assert "Scan a QR code in an app such as Google Authenticator or Microsoft Authenticator." in html
    assert "Once MFA is on, only support can turn it off." in html
    assert re.search(r'id="device-email"[^>]*>Email</button>\s*'
                     r'<span class="badge" id="device-email-current">Current</span>', html)
    setting_up = client.post("/account/security/device", data={"device": "totp"}, headers=HTMX).get_data(as_text=True)
    assert re.search(r'id="device-totp"[^>]*aria-current="step"', setting_up)
    assert "Setting up" in setting_up


def test_authenticator_setup_opens_the_app_copies_the_key_and_keeps_continue_first(client):
    """On a phone: an otpauth link, a Copy key button (the key stays as text), Continue before the QR code."""
    _security(client)
    html = client.post("/account/security/device", data={"device": "totp"}, headers=HTMX).get_data(as_text=True)
    link = re.search(r'<a href="(otpauth://totp/[^"]+)" id="open-in-app">Open in authenticator app</a>', html)
    assert link and "secret=" in link.group(1)
    assert re.search(r'<button type="button" class="button copy-key" data-copy="#manual-key" hidden>'
                     r'Copy key</button>', html)
    assert re.search(r'<code class="manual-key" id="manual-key">[A-Z2-7 ]+</code>', html)
    assert html.index('id="totp-continue"') < html.index("<svg")
    assert "Your current MFA setting stays" not in html  # there is none yet


def test_the_current_setting_line_appears_when_there_is_one(client, outbox):
    """Switching from Email: does the set-up say the current setting stays until verified?"""
    from tests.functional.mfa_helpers import last_code

    _security(client, method="email")
    client.post("/login/code", data={"code": last_code(outbox, "daily@example.test", "email")})
    confirm_password(client, PASSWORD)
    html = client.post("/account/security/device", data={"device": "totp"}, headers=HTMX).get_data(as_text=True)
    assert "Your current MFA setting stays as it is until you verify." in html


def test_click_here_says_what_it_does_and_shows_the_wait_as_information(client, clock, outbox):
    """Is "click here" named for what it does, with the wait beside it, and a too-early press neutral?"""
    _security(client, method="email")
    page = client.get("/login/code").get_data(as_text=True)
    assert re.search(r'<button type="submit" class="link-button" id="resend-code" '
                     r'aria-label="click here to send a new code" '
                     r'data-wait="\d+" aria-describedby="resend-wait">click here</button>', page)
    assert re.search(r'id="resend-wait">You can ask for a new code in <span class="seconds">\d+</span> seconds', page)
    early = client.post("/login/code/resend", headers={"HX-Request": "true", "HX-Target": "code-status"})
    assert early.status_code == 429
    assert 'class="flash flash-info">A code was just sent.' in early.get_data(as_text=True)
    clock.advance(seconds=31)
    assert "data-wait" not in client.get("/login/code").get_data(as_text=True)


def test_the_line_above_the_field_says_when_the_code_expired_or_is_used_up(client, clock, outbox):
    """Does the code page stop promising "valid for five minutes" once the code expired or was used up?"""
    _security(client, method="email")
    clock.advance(minutes=5, seconds=1)
    expired = client.get("/login/code").get_data(as_text=True)
    assert "has expired. Use the click here link below to get a new one." in expired
    assert "valid for five minutes" not in expired.split('id="code-instructions"')[1].split("</p>")[0]
    clock.advance(seconds=30)
    client.post("/login/code/resend")
    for wrong in ("000001", "000002", "000003", "000004", "000005"):
        client.post("/login/code", data={"code": wrong})
    used_up = client.get("/login/code").get_data(as_text=True)
    assert "was tried too many times and no longer works" in used_up


def test_wording_follows_the_specification(client, outbox):
    """Texts cost nothing, and Log In is called Log In."""
    _security(client)
    phone_step = client.get("/account/security?device=sms").get_data(as_text=True)
    assert "There are no additional costs for text messages." in phone_step
    client.post("/logout")
    failed = client.post("/login", data={"email": "daily@example.test", "password": "not the password"})
    assert "cannot Log In" in failed.get_data(as_text=True) and "sign in" not in failed.get_data(as_text=True)


def test_log_in_is_filled_in_after_accepting_an_invitation(client, clock, outbox):
    """After choosing a password from an invitation, is Log In pre-filled with the address (not in the URL)?"""
    from portal.accounts import invitations

    admin = make_user("inviter@example.test", role="practice_admin")
    invitations.invite(admin=admin, email="newcomer@example.test", display_name="New Comer", role="staff",
                       now=clock.now())
    accepted = client.post(outbox.link("newcomer@example.test"),
                           data={"password": "a long enough passphrase", "confirm": "a long enough passphrase"})
    assert accepted.headers["Location"] == "/login"
    login = client.get("/login").get_data(as_text=True)
    assert 'value="newcomer@example.test"' in login
    assert 'value="newcomer@example.test"' not in client.get("/login").get_data(as_text=True)  # once


def test_admins_see_their_areas_and_coverage_on_the_dashboard(client, auth):
    """Does a practice admin see MFA review and Practice users in the header, and coverage with a link?"""
    from tests.factories import make_practice

    practice = make_practice("Coverage Clinic")
    make_user("boss@coverage.test", role="practice_admin", practice=practice)
    make_enrollment(make_user("ready@coverage.test", practice=practice), "email")
    make_user("later@coverage.test", practice=practice)
    auth.login("boss@coverage.test", PASSWORD)
    html = client.get("/").get_data(as_text=True)
    nav = html.split('aria-label="Main"')[1].split("</nav>")[0]
    assert "MFA review" in nav and "Practice users" in nav and "Support" not in nav
    assert re.search(r'id="practice-coverage"><a href="/practice/">1 of 3 users have MFA</a>', html)
    assert re.search(r'id="own-mfa">Off', html)


def test_clinicians_see_their_own_mfa_state_and_no_admin_areas(client, outbox):
    """Does a clinician's dashboard say which method is on, with no admin navigation?"""
    from tests.functional.mfa_helpers import last_code

    _security(client, method="email")
    client.post("/login/code", data={"code": last_code(outbox, "daily@example.test", "email")})
    html = client.get("/").get_data(as_text=True)
    assert 'aria-label="Main"' not in html
    assert re.search(r'id="own-mfa">On: Email to d\*\*\*y@example.test', html)
