"""At desktop and phone size: the authenticator key copied or opened in the app, the wait
before "click here" works again, and support finding a user by name."""

import re
import time
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from playwright.sync_api import expect

from tests.e2e.driver import totp_code

CLINICIAN = "clinician@demo.test"
STAFF = "staff@demo.test"

pytestmark = pytest.mark.sizes("desktop", "phone")


def test_the_authenticator_key_is_copied_or_opened_in_the_app(server, open_portal):
    """Can someone on a phone copy the key, or open it in the app, and still see it as text?"""
    portal = open_portal(server, flow="authenticator", permissions=("clipboard-read", "clipboard-write"))
    page = portal.page
    portal.log_in(CLINICIAN)
    portal.menu("Account Settings")
    portal.confirm_password()
    portal.choose_device("Authenticator Apps")
    panel = page.locator("#device-panel")
    # The key is plain text in any case.
    secret = portal.manual_key()
    # Nothing is set up yet, so no "current setting" is promised to stay.
    expect(panel).not_to_contain_text("Your current MFA setting stays")

    # The link opens the app with the same key: otpauth://totp/<issuer>:<email>?secret=...
    link = panel.get_by_role("link", name="Open in authenticator app")
    href = link.get_attribute("href")
    uri = urlsplit(href)
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp"), href
    assert unquote(uri.path).endswith(CLINICIAN), href
    query = parse_qs(uri.query)
    assert query["secret"] == [secret], href

    # Continue comes before the QR code: a phone reaches it without scrolling past the picture.
    # Measured once the step's heading has taken focus (and the page has scrolled to it), and
    # both boxes in the same frame, so that no scroll falls between them.
    expect(panel.get_by_role("heading", name="Authenticator Apps")).to_be_focused()
    qr = page.get_by_role("img", name="QR code for your authenticator app")
    continue_link = panel.get_by_role("link", name="Continue")
    continue_top, qr_top = page.evaluate(
        "([a, b]) => [a, b].map((e) => e.getBoundingClientRect().top)",
        [continue_link.element_handle(), qr.element_handle()])
    assert continue_top < qr_top
    if portal.size == "phone":
        box = continue_link.bounding_box()
        assert box["y"] + box["height"] <= page.viewport_size["height"], "Continue is below the first screen"

    copy = panel.get_by_role("button", name="Copy key")
    if portal.js:
        portal.step("qr", shot=portal.size == "phone")  # the guide's picture of set-up on a phone
        copy.click()
        portal.expect_swap_perceivable("#device-panel", "Key copied.")
        expect(panel.get_by_role("status").filter(has_text="Key copied.")).to_be_visible()
        assert page.evaluate("() => navigator.clipboard.readText()") == secret
    else:
        # Without JavaScript there is nothing to copy with: no button, and the key to select.
        expect(copy).to_be_hidden()
        portal.check()

    continue_link.click()
    portal.enter_code(totp_code(secret))
    portal.expect_dashboard()
    portal.expect_flash("Multi-factor authentication is on: Authenticator Apps.")
    expect(page.locator("#own-mfa")).to_contain_text("On: Authenticator Apps")
    portal.check()


def test_click_here_waits_with_a_countdown_then_sends_a_new_code(slow_resend_server, open_portal):
    """Right after a code is sent, does the wait before "click here" read right, count down and end?"""
    portal = open_portal(slow_resend_server, flow="resend-wait")
    page = portal.page
    portal.log_in(STAFF)
    portal.menu("Account Settings")
    portal.confirm_password()
    portal.choose_device("Email")
    portal.expect_flash("Multi-factor authentication is on: Email to")
    portal.log_out()

    portal.log_in(STAFF)
    portal.expect_path("/login/code")
    sent_at = time.monotonic()
    resend = page.get_by_role("button", name="click here to send a new code")
    wait = page.locator("#resend-wait")
    # Neutral information next to the link, tied to it, not an error.
    expect(wait).to_have_text(re.compile(r"^You can ask for a new code in [1-6] seconds\.$"))
    expect(wait).to_have_class(re.compile(r"\bhint\b"))
    expect(resend).to_have_attribute("aria-describedby", "resend-wait")
    expect(page.get_by_role("alert")).to_have_count(0)
    seconds = wait.locator(".seconds")

    if portal.js:
        # Disabled while the wait counts down; then usable, and the wait is gone.
        expect(resend).to_be_disabled()
        shown = int(seconds.inner_text())
        assert shown >= 3, f"the page came {6 - shown} seconds after the code was sent"
        page.wait_for_function("([el, shown]) => parseInt(el.textContent, 10) < shown",
                               arg=[seconds.element_handle(), shown], timeout=5_000)
        expect(resend).to_be_disabled()  # a second or more still to wait
        portal.step("countdown", shot=portal.size == "desktop")
        expect(resend).to_be_enabled(timeout=10_000)
        expect(wait).to_be_hidden()
    else:
        # A plain form: clicking early says how long is left, as information.
        expect(resend).to_be_enabled()
        portal.check()
        resend.click()
        portal.expect_path("/login/code")
        flash = portal.expect_flash(re.compile(r"A code was just sent\. You can ask for a new one in [1-6] seconds\."))
        expect(flash.locator(".flash-info")).to_have_count(1)
        expect(page.locator(".flash-error")).to_have_count(0)
        portal.check()
        time.sleep(max(0.0, 6.3 - (time.monotonic() - sent_at)))  # the server's 6-second wait
        portal.goto("/login/code")
        expect(wait).to_have_count(0)

    first_id = portal.latest_message_id(STAFF, "email", subject="Your verification code")
    assert first_id, "Log In sent a code"
    resend.click()
    expect(page.get_by_role("status").filter(has_text="A new code was sent to")).to_be_visible()
    _, code = portal.read_code(STAFF, "email", newer_than=first_id)
    portal.check()
    portal.enter_code(code)
    portal.expect_dashboard()
    portal.check()


def test_support_finds_a_user_by_name_with_role_practice_and_mfa(server, open_portal):
    """Does support's search find a user by name, and say their role, practice and MFA?"""
    user = open_portal(server, flow="support-search")
    user.log_in(CLINICIAN)
    user.menu("Account Settings")
    user.confirm_password()
    user.choose_device("Email")
    user.expect_flash("Multi-factor authentication is on: Email to")
    user.check()

    support = open_portal(server, flow="support-search")
    page = support.page
    support.enter_support_area()
    page.get_by_role("navigation", name="Support").get_by_role("link", name="Users").click()
    search = page.get_by_label("Name, email or practice name")
    search.fill("casey")
    page.get_by_role("button", name="Search").click()
    rows = page.get_by_role("row").filter(has=page.get_by_role("cell"))
    expect(rows).to_have_count(1)
    row = rows.first
    expect(row.get_by_role("link", name=CLINICIAN)).to_be_visible()
    expect(row.get_by_role("cell")).to_have_text([CLINICIAN, "Casey Clinician", "Clinician", "Demo Family Practice",
                                                  "Email"])
    support.step("by-name", shot=support.size == "desktop")

    # By practice name: everyone in it, with and without MFA.
    search.fill("Demo Family")
    page.get_by_role("button", name="Search").click()
    expect(rows).to_have_count(3)
    expect(rows.filter(has_text="Sam Staff")).to_contain_text("None")
    expect(rows.filter(has_text="Alex Admin")).to_contain_text("Practice admin")
    support.check()

    search.fill("nobody-like-this")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("cell")).to_have_text("No users match “nobody-like-this”.")
    support.check()

    page.get_by_label("Name, email or practice name").fill("Casey Clinician")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=CLINICIAN).click()
    expect(page.locator("#mfa-state dt:text-is('MFA method') + dd")).to_contain_text("Email to")
    support.check()
