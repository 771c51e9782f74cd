"""Practices that require MFA, and what support does: clearing a user's MFA, requiring MFA,
approving a practice admin's request to require it."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.driver import totp_code
from tests.e2e.server import DEMO_PASSWORD

PROVIDER = "provider@required.test"
CLINICIAN = "clinician@demo.test"
STAFF = "staff@demo.test"
ADMIN = "admin@demo.test"
SUPPORT = "support@portal.test"


def test_a_practice_that_requires_mfa_sends_its_users_to_choose_a_device(server, open_portal):
    """In Required MFA Clinic, is Choose MFA Device all a user without MFA can reach?"""
    portal = open_portal(server, flow="required")
    page = portal.page
    portal.log_in(PROVIDER)
    # Right after the password: no dashboard, and no second password prompt.
    portal.expect_path("/account/security")
    expect(page.locator("#enroll-required")).to_contain_text(
        "Your practice requires multi-factor authentication (MFA). Set up a device below to continue")
    expect(page.get_by_role("group", name="Choose MFA Device:")).to_be_visible()
    portal.step("choose-device")

    portal.goto("/")
    portal.expect_path("/account/security")
    portal.goto("/account/security?device=sms")
    expect(page.get_by_label("Phone Number")).to_be_visible()
    portal.check()

    portal.choose_device("Email")
    portal.expect_path("/login/code")
    portal.expect_flash("Email is now your MFA device. Enter the code we just emailed you to finish logging in.")
    _, code = portal.read_code(PROVIDER, "email")
    portal.check()
    portal.enter_code(code)
    portal.expect_dashboard()
    portal.goto("/")
    portal.expect_dashboard()
    portal.check()


def enroll_and_confirm_support(portal, *, shots: bool) -> str:
    """Support's first Log In: set up the required authenticator app, then confirm for the support area."""
    page = portal.page
    portal.log_in(SUPPORT)
    portal.expect_path("/account/security")
    expect(page.locator("#enroll-required")).to_contain_text("Your role requires multi-factor authentication")
    device_buttons = page.get_by_role("group", name="Choose MFA Device:").get_by_role("button")
    expect(device_buttons).to_have_text(["Authenticator Apps"])
    portal.choose_device("Authenticator Apps")
    secret = portal.manual_key()
    portal.check()
    page.get_by_role("link", name="Continue").click()
    portal.enter_code(totp_code(secret))
    portal.expect_dashboard()

    portal.menu("Support")
    portal.expect_path("/support/confirm")
    expect(page.get_by_role("heading", name="Support area: confirm it's you")).to_be_visible()
    page.get_by_label("Password", exact=True).fill(DEMO_PASSWORD)
    # The code just used to set up the app is spent; the app's next one is accepted.
    portal.code_field().fill(totp_code(secret, next_step=True))
    portal.step("support-confirm", shot=shots)
    page.get_by_role("button", name="Confirm").click()
    portal.expect_path("/support/")
    expect(page.get_by_role("navigation", name="Support")).to_be_visible()
    return secret


def test_support_clears_mfa_and_the_user_logs_in_with_the_password_alone(server, open_portal):
    """After support clears a lost phone's MFA, does the user get in with their password alone?"""
    user = open_portal(server, flow="support-clear")
    user.log_in(CLINICIAN)
    user.menu("Account Settings")
    user.confirm_password()
    user.choose_device("Email")
    user.expect_flash("Multi-factor authentication is on: Email to")
    user.check()

    support = open_portal(server, flow="support-clear")
    page = support.page
    enroll_and_confirm_support(support, shots=True)
    support.check()

    page.get_by_label("Email or practice name").fill(CLINICIAN)
    page.get_by_role("button", name="Search").click()
    row = page.get_by_role("row").filter(has_text=CLINICIAN)
    expect(row).to_contain_text("Email")
    support.step("find-user")
    row.get_by_role("link", name=CLINICIAN).click()
    expect(page.locator("#mfa-state dt:text-is('MFA method') + dd")).to_contain_text("Email to")
    page.get_by_label("Reason").fill("Lost phone; identity checked by a call-back to the practice.")
    page.get_by_label("Support ticket reference").fill("SUP-1042")
    support.step("clear-mfa")
    page.get_by_role("button", name="Clear MFA settings").click()
    support.expect_flash(f"MFA settings cleared for {CLINICIAN}. Their sessions were ended and they were emailed.")
    expect(page.locator("#mfa-state dt:text-is('MFA method') + dd")).to_have_text("None")
    support.step("cleared")
    _, notice = support.read_message(CLINICIAN, "email", subject="Your multi-factor authentication was cleared")
    assert "cleared" in notice

    # The user's open session was ended; their password alone now opens the dashboard.
    user.goto("/")
    user.expect_path("/login")
    user.log_in(CLINICIAN)
    user.expect_dashboard()
    expect(user.page.locator("#mfa-notice")).to_contain_text("Multi-factor authentication is off")
    user.check()


def test_support_requires_mfa_and_a_signed_in_user_must_enroll_at_the_next_click(server, open_portal):
    """When support requires MFA for a practice, is a signed-in user without MFA sent to set it up?"""
    user = open_portal(server, flow="support-require")
    user.log_in(STAFF)
    user.expect_dashboard()
    user.check()

    support = open_portal(server, flow="support-require")
    page = support.page
    enroll_and_confirm_support(support, shots=False)
    page.get_by_role("row").filter(has_text="Demo Family Practice").get_by_role("link").click()
    expect(page.get_by_role("heading", name="Demo Family Practice")).to_be_visible()
    expect(page.locator("#requirement-state")).to_have_text("MFA is optional in this practice.")
    page.get_by_label("Reason").fill("The practice admin asked by phone; ticket SUP-2001.")
    support.step("practice")
    page.get_by_role("button", name="Require MFA for all users").click()
    expect(page.locator("#requirement-effect")).to_contain_text("3 users; 3 will have to set up MFA")
    page.get_by_role("button", name="Confirm", exact=True).click()
    support.expect_flash("MFA is now required for Demo Family Practice. 3 user(s) without MFA will be emailed.")
    expect(page.locator("#requirement-state")).to_have_text("MFA is required for everyone in this practice.")
    expect(page.get_by_role("button", name="Stop requiring MFA")).to_be_visible()
    support.step("required")
    support.read_message(STAFF, "email", subject="Your practice now requires multi-factor authentication")

    # The staff member's next click leads to Choose MFA Device, not the page they asked for.
    user.page.get_by_role("link", name="Practice Portal").click()
    user.expect_path("/account/security")
    expect(user.page.locator("#enroll-required")).to_contain_text("Your practice requires multi-factor authentication")
    user.step("user-must-enroll")
    user.confirm_password()
    user.choose_device("Authenticator Apps")
    secret = user.manual_key()
    user.page.get_by_role("link", name="Continue").click()
    user.enter_code(totp_code(secret))
    user.expect_dashboard()
    user.check()


@pytest.mark.sizes("desktop", "phone")
def test_support_approves_an_admins_request_after_its_effect_and_confirm(server, open_portal):
    """Does approving a practice admin's request show who it reaches, change nothing until
    Confirm approval, show the new numbers when the practice changed meanwhile, and then require
    MFA and tell the admin?"""
    admin = open_portal(server, flow="approve-request-admin")
    admin.log_in(ADMIN)
    admin.menu("Account Settings")
    admin.confirm_password()
    admin.choose_device("Email")
    admin.expect_flash("Multi-factor authentication is on: Email to")
    admin.goto("/practice/")
    admin.page.get_by_label("Note for support (optional)").fill("Please require MFA for everyone, starting now.")
    admin.page.get_by_role("button", name="Send request to support").click()
    admin.expect_flash("Your request was sent to support.")
    admin.check()

    support = open_portal(server, flow="approve-request")
    page = support.page
    shots = support.size == "desktop"
    support.enter_support_area()
    article = page.locator("article.request").filter(
        has=page.get_by_role("heading", name=re.compile(r"Demo Family Practice: require MFA$")))
    expect(article).to_contain_text("From Alex Admin (admin@demo.test)")
    expect(article.locator("blockquote")).to_have_text("Please require MFA for everyone, starting now.")
    request_id = article.get_attribute("id").removeprefix("request-")
    decide_path = f"/support/requests/{request_id}/decide"
    approve = article.get_by_role("button", name="Approve", exact=True)
    expect(approve).to_have_accessible_description(re.compile(r"you will see who it reaches and confirm first"))
    support.step("request", shot=shots)

    # A decision needs a note for the admin: said on the field, nothing decided.
    support.expect_rejection(decide_path)
    approve.click()
    note = page.locator(f"#note-{request_id}")
    expect(page.locator(f"#note-{request_id}-error")).to_have_text("Give a note for the practice admin.")
    expect(note).to_have_attribute("aria-invalid", "true")
    support.check()

    # Approve: first who it reaches, marked as a warning; nothing changes yet.
    note.fill("Approved as asked; ticket SUP-3001.")
    page.locator(f"#request-{request_id}").get_by_role("button", name="Approve", exact=True).click()
    confirm_heading = page.get_by_role(
        "heading", name="Confirm approval: Require MFA for everyone in Demo Family Practice, starting now.")
    expect(confirm_heading).to_be_visible()
    effect = page.locator(f"#request-{request_id}-effect")
    expect(effect).to_have_text("Warning: 3 users; 2 will have to set up MFA at their next Log In (anyone logged "
                                "in now, at their next click). They are emailed now.")
    confirm = page.get_by_role("button", name="Confirm approval")
    expect(confirm).to_have_accessible_description(re.compile(r"^Warning: 3 users; 2 will have to set up MFA"))
    expect(page.locator(f"#request-{request_id}")).to_contain_text(
        "Your note for the practice admin: Approved as asked; ticket SUP-3001.")
    if support.js:
        support.expect_focus_within(f"#request-{request_id}-confirm")
    support.step("approve-preview", shot=shots)
    admin.goto("/practice/")
    expect(admin.page.locator("#requirement-state")).to_contain_text("MFA is optional in this practice.")
    expect(admin.page.locator("#request-state")).to_contain_text("is waiting for support.")

    # Going back decides nothing: the request is still open, Approve again.
    page.get_by_role("link", name="Go back without deciding").click()
    support.expect_path("/support/")
    expect(article.get_by_role("button", name="Approve", exact=True)).to_be_visible()
    page.locator(f"#note-{request_id}").fill("Approved as asked; ticket SUP-3001.")
    article.get_by_role("button", name="Approve", exact=True).click()
    expect(confirm_heading).to_be_visible()
    support.check()

    # Meanwhile Casey sets up MFA: the numbers shown are out of date, so Confirm shows the new ones.
    user = open_portal(server, flow="approve-request-user")
    user.log_in(CLINICIAN)
    user.menu("Account Settings")
    user.confirm_password()
    user.choose_device("Email")
    user.expect_flash("Multi-factor authentication is on: Email to")
    page.get_by_role("button", name="Confirm approval").click()
    expect(page.get_by_role("alert").filter(has_text="The practice or its users changed since you looked")
           ).to_be_visible()
    expect(effect).to_have_text("Warning: 3 users; 1 will have to set up MFA at their next Log In (anyone logged "
                                "in now, at their next click). They are emailed now.")
    support.check()
    admin.goto("/practice/")
    expect(admin.page.locator("#requirement-state")).to_contain_text("MFA is optional in this practice.")

    page.get_by_role("button", name="Confirm approval").click()
    support.expect_path("/support/")
    support.expect_flash(f"Request #{request_id} from Demo Family Practice approved.")
    expect(page.locator(f"#request-{request_id}")).to_have_count(0)
    expect(page.get_by_text("No open requests.")).to_be_visible()
    support.step("approved", shot=shots)
    support.read_message(STAFF, "email", subject="Your practice now requires multi-factor authentication")

    # The admin reads the answer and the practice's new state.
    admin.goto("/practice/")
    expect(admin.page.locator("#requirement-state")).to_contain_text("MFA is required for everyone in this practice.")
    expect(admin.page.locator("#request-state")).to_have_text(
        "Your last request to require MFA was approved: “Approved as asked; ticket SUP-3001.”.")
    admin.check()
