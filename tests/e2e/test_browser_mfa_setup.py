"""Setting up each MFA method from Account Settings | Security, and logging in with it."""

import re

from playwright.sync_api import expect

from tests.e2e.driver import totp_code

CLINICIAN = "clinician@demo.test"
STAFF = "staff@demo.test"
PHONE_E164 = "+12025550143"


def open_security_tab(portal, *, shots: bool):
    """Account Settings from the top-right menu, then the Security tab's password re-entry."""
    portal.open_menu()
    portal.step("account-menu", shot=shots)
    portal.menu("Account Settings")
    portal.expect_path("/account/security")
    expect(portal.page.get_by_role("link", name="Security")).to_have_attribute("aria-current", "page")
    portal.step("password", shot=shots)
    portal.confirm_password()


def test_sms_enrollment_then_log_in_with_a_texted_code(server, open_portal):
    """Can a clinician set up SMS exactly as the guide says, and then log in with a texted code?"""
    portal = open_portal(server, flow="sms")
    page = portal.page
    portal.fill_login(CLINICIAN)
    portal.step("log-in")
    page.get_by_role("button", name="Log In").click()
    portal.expect_dashboard()
    expect(page.locator("#mfa-notice")).to_contain_text("Multi-factor authentication is off")

    open_security_tab(portal, shots=True)
    portal.step("choose-device")

    portal.choose_device("SMS")
    phone = page.get_by_label("Phone Number")
    expect(phone).to_be_visible()
    if portal.js:
        portal.expect_focus_within("#phone")

    # A number that cannot take texts is refused, with the reason tied to the field.
    phone.fill("(800) 555-0143")
    portal.expect_rejection("/account/security/phone")
    page.get_by_role("button", name="Save Phone Number").click()
    error = page.locator("#phone-error")
    expect(error).to_have_text("Toll-free numbers cannot receive codes. Enter a US mobile number.")
    expect(error).to_have_attribute("role", "alert")
    expect(phone).to_have_attribute("aria-describedby", re.compile(r"\bphone-error\b"))
    expect(phone).to_have_attribute("aria-invalid", "true")
    if portal.js:
        portal.expect_focus_within("#phone")
    portal.check()

    phone.fill("(202) 555-0143")
    portal.step("phone-number")
    page.get_by_role("button", name="Save Phone Number").click()

    expect(portal.code_field()).to_be_visible()
    panel = page.locator("#device-panel")
    expect(panel).to_contain_text("We sent a 6-digit code to (***) ***-0143")
    expect(panel).to_contain_text("valid for five minutes")
    expect(panel.get_by_role("button", name="click here")).to_be_enabled()
    if portal.js:
        portal.expect_focus_within("#code")
    _, code = portal.read_code(PHONE_E164, "sms")
    portal.code_field().fill(code)
    portal.step("enter-code")
    portal.enter_code(code)

    portal.expect_dashboard()
    portal.expect_flash("Multi-factor authentication is on: SMS to (***) ***-0143.")
    expect(page.locator("#mfa-notice")).to_have_count(0)
    portal.step("enabled")
    enrolled_id = portal.latest_message_id(PHONE_E164, "sms")

    portal.log_out()
    portal.log_in(CLINICIAN)
    portal.expect_path("/login/code")
    expect(page.locator("#code-instructions")).to_contain_text(
        "We sent a 6-digit code by text message to (***) ***-0143. The code is valid for five minutes.")
    _, code = portal.read_code(PHONE_E164, "sms", newer_than=enrolled_id)
    portal.step("login-code")
    portal.enter_code(code)
    portal.expect_dashboard()
    portal.check()


def test_email_is_enabled_at_once_and_the_next_log_in_emails_a_code(server, open_portal):
    """Does choosing Email turn MFA on at once, with the code emailed at the next Log In?"""
    portal = open_portal(server, flow="email")
    page = portal.page
    portal.log_in(STAFF)
    portal.expect_dashboard()
    open_security_tab(portal, shots=False)

    portal.choose_device("Email")
    portal.expect_path("/account/security")
    portal.expect_flash("Multi-factor authentication is on: Email to")
    expect(page.locator("#mfa-state")).to_contain_text("MFA is on: Email to")
    email_button = page.get_by_role("button", name="Email", exact=True)
    expect(email_button).to_have_attribute("aria-describedby", re.compile(r"\bmfa-state\b"))
    portal.step("enabled")
    notice_id, notice = portal.read_message(STAFF, "email", subject="Multi-factor authentication is on")
    assert re.search(r"\b\d{6}\b", notice) is None, "a notice never carries a code"

    portal.log_out()
    portal.log_in(STAFF)
    portal.expect_path("/login/code")
    expect(page.locator("#code-instructions")).to_contain_text("We sent a 6-digit code by email to")
    expect(page.locator("#code-instructions")).to_contain_text("valid for five minutes")
    _, code = portal.read_code(STAFF, "email", newer_than=notice_id)
    portal.step("login-code")
    # Codes are often copied from the email: a pasted code with a space in the middle works.
    portal.code_field().focus()
    page.keyboard.insert_text(f"{code[:3]} {code[3:]}")
    expect(portal.code_field()).to_have_value(f"{code[:3]} {code[3:]}")
    page.get_by_role("button", name="Verify").click()
    portal.expect_dashboard()
    portal.check()


def test_authenticator_app_enrollment_then_log_in_with_the_app(server, open_portal):
    """Can a clinician set up an authenticator app from the manual key and log in with it?"""
    portal = open_portal(server, flow="authenticator")
    page = portal.page
    portal.log_in(CLINICIAN)
    open_security_tab(portal, shots=False)

    portal.choose_device("Authenticator Apps")
    qr = page.get_by_role("img", name="QR code for your authenticator app")
    expect(qr).to_be_visible()
    # The QR code's text alternative is the key itself, in the caption of the same figure.
    secret = portal.manual_key()
    figure = page.get_by_role("figure", name=re.compile("Enter this key manually"))
    expect(figure.get_by_role("img", name="QR code for your authenticator app")).to_be_visible()
    expect(figure.locator("figcaption")).to_contain_text(" ".join(secret[i:i + 4] for i in range(0, len(secret), 4)))
    if portal.js:
        portal.expect_focus_within("#device-heading")
    portal.step("qr")

    page.get_by_role("link", name="Continue").click()
    expect(portal.code_field()).to_be_visible()
    if portal.js:
        portal.expect_focus_within("#code")
    portal.code_field().fill(totp_code(secret))
    portal.step("app-code")
    page.get_by_role("button", name="Verify").click()
    portal.expect_dashboard()
    portal.expect_flash("Multi-factor authentication is on: Authenticator Apps.")
    portal.check()

    portal.log_out()
    portal.log_in(CLINICIAN)
    portal.expect_path("/login/code")
    expect(page.locator("#code-instructions")).to_contain_text("Open your authenticator app and enter the 6-digit code")
    expect(page.get_by_role("button", name="click here")).to_have_count(0)
    portal.step("login-code")
    # The step used to set the app up is spent: the app's next code logs in.
    portal.enter_code(totp_code(secret, next_step=True))
    portal.expect_dashboard()
    portal.check()


def test_switching_from_email_to_an_authenticator_app(server, open_portal):
    """After switching from Email to an app, is Log In by app only, with no email code any more?"""
    portal = open_portal(server, flow="switch")
    page = portal.page
    portal.log_in(STAFF)
    open_security_tab(portal, shots=False)
    portal.choose_device("Email")
    portal.expect_flash("Multi-factor authentication is on: Email to")
    expect(page.get_by_role("group", name="Choose MFA Device:")).to_be_visible()
    portal.check()

    portal.choose_device("Authenticator Apps")
    expect(page.locator("#device-panel")).to_contain_text("Your current MFA setting stays as it is until you verify.")
    secret = portal.manual_key()
    portal.check()
    page.get_by_role("link", name="Continue").click()
    portal.enter_code(totp_code(secret))
    portal.expect_dashboard()
    portal.expect_flash("Multi-factor authentication is on: Authenticator Apps.")
    portal.check()
    _, notice = portal.read_message(STAFF, "email", subject="Your multi-factor authentication method changed")
    assert "Authenticator Apps" in notice

    last_email = portal.latest_message_id(STAFF, "email")
    portal.log_out()
    portal.log_in(STAFF)
    portal.expect_path("/login/code")
    expect(page.locator("#code-instructions")).to_contain_text("Open your authenticator app")
    expect(page.get_by_role("button", name="click here")).to_have_count(0)
    # Email is no longer the method: Log In sent nothing by email.
    assert portal.latest_message_id(STAFF, "email") == last_email
    portal.check()
    portal.enter_code(totp_code(secret, next_step=True))
    portal.expect_dashboard()

    portal.menu("Account Settings")
    portal.confirm_password()
    expect(page.locator("#mfa-state")).to_contain_text("MFA is on: Authenticator Apps")
    portal.step("switched")
