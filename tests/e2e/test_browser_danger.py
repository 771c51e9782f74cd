"""Actions with wide effects, in the browser: support sees what clearing a user's MFA does, and
what requiring MFA for a practice does, before it happens; the practice-wide change needs Confirm."""

import re

import pytest
from playwright.sync_api import expect

CLINICIAN = "clinician@demo.test"
PRACTICE = "Demo Family Practice"


@pytest.mark.sizes("desktop", "phone")
def test_support_sees_the_effect_confirms_and_sees_the_result(server, open_portal, js, size):
    """Does support read "3 users; 2 will have to set up MFA at their next Log In" and change
    nothing until Confirm, then see the practice require MFA? Does Casey's page say that
    clearing ends Casey's sessions and emails them?"""
    shots = size == "desktop"
    user = open_portal(server, flow="danger-user")
    user.log_in(CLINICIAN)
    user.menu("Account Settings")
    user.confirm_password()
    user.choose_device("Email")
    user.expect_flash("Multi-factor authentication is on: Email to")

    support = open_portal(server, flow="danger")
    page = support.page
    support.enter_support_area()

    page.get_by_label("Name, email or practice name").fill("Casey")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=CLINICIAN).click()
    effect = page.locator("#clear-effect")
    expect(effect).to_have_text("Warning: Clearing MFA ends Casey Clinician's sessions and emails them. "
                                "They can then log in with their password alone.")
    expect(page.get_by_role("button", name="Clear MFA settings")).to_have_accessible_description(
        re.compile(r"^Warning: Clearing MFA ends Casey Clinician's sessions and emails them\."))
    support.step("clear-preview", shot=shots)

    page.get_by_role("link", name="Overview").click()
    page.get_by_role("row").filter(has_text=PRACTICE).get_by_role("link").click()
    expect(page.locator("#requirement-state")).to_have_text("MFA is optional in this practice.")
    practice_path = re.sub(r"^https?://[^/]+", "", page.url)
    page.get_by_label("Reason").fill("The practice admin asked by phone; ticket SUP-2001.")
    page.get_by_role("button", name="Require MFA for all users").click()

    heading = page.get_by_role("heading", name=f"Confirm: Require MFA for everyone in {PRACTICE}, starting now.")
    expect(heading).to_be_visible()
    expect(page.locator("#requirement-effect")).to_have_text(
        "Warning: 3 users; 2 will have to set up MFA at their next Log In (anyone logged in now, at their next "
        "click). They are emailed now.")
    if js:
        support.expect_focus_within("#confirm-heading")
        support.expect_path(practice_path)  # swapped in place
    else:
        support.expect_path(practice_path + "/requirement")
    expect(page.locator("#requirement-state")).to_have_text("MFA is optional in this practice.")  # nothing yet
    support.step("requirement-preview", shot=shots)

    page.get_by_role("button", name="Confirm", exact=True).click()
    support.expect_path(practice_path)
    support.expect_flash(f"MFA is now required for {PRACTICE}. 2 user(s) without MFA will be emailed.")
    expect(page.locator("#requirement-state")).to_have_text("MFA is required for everyone in this practice.")
    expect(page.get_by_role("button", name="Stop requiring MFA")).to_be_visible()
    support.step("requirement-confirmed", shot=shots)
    support.read_message("staff@demo.test", "email", subject="Your practice now requires multi-factor authentication")

    # Stopping is previewed the same way; going back changes nothing.
    page.get_by_label("Reason").fill("Pilot over.")
    page.get_by_role("button", name="Stop requiring MFA").click()
    expect(page.locator("#requirement-effect")).to_have_text(
        "Warning: 3 users; the 2 without MFA are emailed that it is no longer required; the 1 with MFA keeps it.")
    page.get_by_role("link", name="Go back without changing anything").click()
    expect(page.locator("#requirement-state")).to_have_text("MFA is required for everyone in this practice.")
    support.check()
