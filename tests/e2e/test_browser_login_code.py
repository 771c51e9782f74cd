"""The code page at Log In: "click here" to resend, error messages, and the keyboard alone."""

import re
import time

from playwright.sync_api import expect

from tests.e2e.driver import totp_code
from tests.e2e.server import DEMO_PASSWORD

STAFF = "staff@demo.test"
CLINICIAN = "clinician@demo.test"


def turn_on_email(portal, email):
    portal.log_in(email)
    portal.menu("Account Settings")
    portal.confirm_password()
    portal.choose_device("Email")
    portal.expect_flash("Multi-factor authentication is on: Email to")
    portal.check()


def test_click_here_sends_a_new_code_and_the_old_one_stops_working(server, open_portal):
    """Does "click here" send a new code that works, while the earlier code is refused?"""
    portal = open_portal(server, flow="resend")
    page = portal.page
    turn_on_email(portal, STAFF)
    portal.log_out()

    portal.log_in(STAFF)
    portal.expect_path("/login/code")
    shown_at = time.monotonic()
    instructions = page.locator("#code-instructions")
    # The lifetime is said in words, and a resend is offered from the start.
    expect(instructions).to_contain_text(re.compile(r"valid for (5|five) minutes"))
    resend = page.get_by_role("button", name="click here")
    expect(resend).to_be_enabled()
    expect(page.locator("#code-status")).to_contain_text("Didn't get a code? click here to resend.")
    old_id, old_code = portal.read_code(STAFF, "email")
    portal.check()

    time.sleep(max(0.0, 2.3 - (time.monotonic() - shown_at)))  # the test server's 2-second cooldown
    resend.click()
    status = page.get_by_role("status").filter(has_text="A new code was sent to")
    expect(status).to_contain_text("Earlier codes no longer work.")
    expect(status).to_have_attribute("aria-live", "polite")
    if portal.js:
        # The swap announces itself through the live region and puts focus back in the code field.
        portal.expect_focus_within("#code")
    new_id, new_code = portal.read_code(STAFF, "email", newer_than=old_id)
    portal.step("new-code")

    portal.expect_rejection("/login/code")
    portal.enter_code(old_code)
    field = portal.code_field()
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_attribute("aria-describedby", re.compile(r"\bcode-error\b"))
    error = page.locator("#code-error")
    expect(error).to_have_attribute("role", "alert")
    expect(error).to_have_text("That code is not correct. Check it and try again.")
    if portal.js:
        portal.expect_focus_within("#code")
    portal.check()

    portal.enter_code(new_code)
    portal.expect_dashboard()
    portal.check()


def test_the_keyboard_alone_can_log_in_and_set_up_an_authenticator_app(server, open_portal):
    """Can someone who uses only the keyboard log in and set up an authenticator app?"""
    portal = open_portal(server, flow="keyboard")
    page = portal.page
    keyboard = page.keyboard
    portal.goto("/login")

    tab_to(page, "#email")
    keyboard.type(CLINICIAN)
    keyboard.press("Tab")
    expect(page.locator("#password")).to_be_focused()
    keyboard.type(DEMO_PASSWORD)
    keyboard.press("Enter")
    portal.expect_dashboard()
    portal.check()

    tab_to(page, "details.user-menu > summary")
    keyboard.press("Enter")
    expect(page.locator("details.user-menu ul")).to_be_visible()
    tab_to(page, "details.user-menu a", text="Account Settings")
    keyboard.press("Enter")
    portal.expect_path("/account/security")
    tab_to(page, "#password")
    keyboard.type(DEMO_PASSWORD)
    keyboard.press("Enter")
    expect(page.get_by_role("group", name="Choose MFA Device:")).to_be_visible()
    portal.check()

    tab_to(page, "#device-totp")
    keyboard.press("Space")
    secret = portal.manual_key()
    portal.check()
    tab_to(page, "#totp-continue")
    keyboard.press("Enter")
    expect(portal.code_field()).to_be_visible()
    tab_to(page, "#code")
    keyboard.type(totp_code(secret))
    keyboard.press("Enter")
    portal.expect_dashboard()
    portal.expect_flash("Multi-factor authentication is on: Authenticator Apps.")

    # Log Out from the menu, by keyboard too.
    tab_to(page, "details.user-menu > summary")
    keyboard.press("Space")
    tab_to(page, "details.user-menu button", text="Log Out")
    keyboard.press("Enter")
    portal.expect_path("/login")
    portal.check()


def tab_to(page, selector: str, *, text: str | None = None, presses: int = 40) -> None:
    """Press Tab (never click) until the focused element matches `selector` (and `text`)."""
    target = page.locator(selector if text is None else f"{selector}:text-is('{text}')")
    for _ in range(presses):
        if target.evaluate_all("(elements) => elements.includes(document.activeElement)"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector} {text or ''}")
