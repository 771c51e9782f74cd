"""Symantec VIP Access from Account Settings | Security, and Log In with it, in a real browser.

The test server's VIP service is the development stand-in inside the portal (portal/dev), which
knows the demo credentials; the test computes their codes as the VIP Access app does.
"""

import time

from playwright.sync_api import expect

from portal.dev.vip_standin import demo_secret
from tests.e2e.test_browser_mfa_setup import open_security_tab
from tests.vip_server import code

CLINICIAN = "clinician@demo.test"
CREDENTIAL = "VSST12345678"


def test_vip_access_enrollment_then_log_in_with_a_security_code(server, open_portal):
    """Can a clinician choose Authenticator Apps -> Use Symantec VIP Access, enter the Credential
    ID and two consecutive security codes, Verify, and then log in with the app's next code?"""
    portal = open_portal(server, flow="vip")
    page = portal.page
    secret = demo_secret(CREDENTIAL)
    portal.log_in(CLINICIAN)
    open_security_tab(portal, shots=False)
    summary = page.locator("#device-totp-summary")
    expect(summary).to_contain_text("or use Symantec VIP Access")

    portal.choose_device("Authenticator Apps")
    paths = page.get_by_role("group", name="How will you get your codes?")
    expect(paths.get_by_role("button", name="Scan a QR code")).to_have_attribute("aria-current", "step")
    portal.step("paths")
    paths.get_by_role("button", name="Use Symantec VIP Access").click()
    credential = page.get_by_label("Credential ID")
    expect(credential).to_be_visible()
    expect(page.get_by_role("group", name="How will you get your codes?").get_by_role(
        "button", name="Use Symantec VIP Access")).to_have_attribute("aria-current", "step")
    if portal.js:
        portal.expect_focus_within("#device-heading")

    # A Credential ID that is not four letters and eight digits: refused, the reason on the field.
    credential.fill("VSST1234")
    page.get_by_label("Security Code 1").fill("123456")
    page.get_by_label("Security Code 2").fill("234567")
    portal.expect_rejection("/account/security/vip")
    page.get_by_role("button", name="Verify").click()
    error = page.locator("#credential_id-error")
    expect(error).to_contain_text("four letters and eight digits")
    expect(error).to_have_attribute("role", "alert")
    expect(page.get_by_label("Credential ID")).to_have_attribute("aria-invalid", "true")
    portal.check()

    now = time.time()
    page.get_by_label("Credential ID").fill(CREDENTIAL)
    page.get_by_label("Security Code 1").fill(code(secret, now, -1))
    page.get_by_label("Security Code 2").fill(code(secret, now, 0))
    portal.step("credential")
    page.get_by_role("button", name="Verify").click()
    portal.expect_dashboard()
    portal.expect_flash("Multi-factor authentication is on: Symantec VIP Access (Credential ID VSST••••5678).")
    portal.step("enabled")

    portal.log_out()
    portal.log_in(CLINICIAN)
    portal.expect_path("/login/code")
    expect(page.locator("#code-instructions")).to_contain_text("Open Symantec VIP Access")
    expect(page.get_by_role("button", name="click here")).to_have_count(0)
    portal.step("login-code")
    # The two set-up codes are spent: the app's next code logs in.
    portal.enter_code(code(secret, time.time(), 1))
    portal.expect_dashboard()

    portal.menu("Account Settings")
    portal.confirm_password()
    expect(page.locator("#mfa-state")).to_contain_text("MFA is on: Symantec VIP Access (Credential ID VSST••••5678)")
    expect(page.locator("#device-totp-current")).to_have_text("Current")
    portal.check()


def test_dev_outbox_shows_the_demo_credentials_codes(server, open_portal):
    """Does the dev outbox page show each demo credential's current security code (for demos)?"""
    portal = open_portal(server, flow="vip-outbox")
    portal.goto("/dev/outbox")
    demo = portal.page.locator(f"#vip-demo-{CREDENTIAL}")
    expect(demo).to_contain_text(CREDENTIAL)
    shown = demo.locator(".vip-demo-code").inner_text()
    now = time.time()
    assert shown in {code(demo_secret(CREDENTIAL), now, offset) for offset in (-1, 0)}
    portal.check()
