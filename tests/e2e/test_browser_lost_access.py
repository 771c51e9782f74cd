"""A lost phone, end to end: the user asks support to clear MFA from the code page, support
answers from its queue, and the user logs in with the password alone (then sets MFA up again
where the practice requires it)."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.driver import totp_code

CLINICIAN = "clinician@demo.test"  # Demo Family Practice: MFA optional
PROVIDER = "provider@required.test"  # Required MFA Clinic
PHONE_E164 = "+12025550143"
REQUESTED = "A request to clear your multi-factor authentication was made"
CLEARED = "Your multi-factor authentication was cleared"


def set_up_sms(portal, email: str) -> None:
    """Account Settings | Security: SMS to (202) 555-0143, verified with the texted code."""
    page = portal.page
    portal.log_in(email)
    portal.menu("Account Settings")
    portal.confirm_password()
    portal.choose_device("SMS")
    page.get_by_label("Phone Number").fill("(202) 555-0143")
    page.get_by_role("button", name="Save Phone Number").click()
    _, code = portal.read_code(PHONE_E164, "sms")
    portal.enter_code(code)
    portal.expect_dashboard()
    portal.expect_flash("Multi-factor authentication is on: SMS to (***) ***-0143.")
    portal.log_out()


def ask_support_from_the_code_page(portal, email: str, *, shots: bool) -> None:
    """Log In with the password; on the code page, "Can't use this method?" then "Ask support to clear MFA"."""
    page = portal.page
    portal.log_in(email)
    portal.expect_path("/login/code")
    portal.step("code-page", shot=shots)
    page.get_by_role("link", name="Can't use this method?").click()
    portal.expect_path("/login/lost-access")
    expect(page.get_by_role("heading", name="Can't use your MFA method?", level=1)).to_be_visible()
    # What to do, whom to contact, and what to have ready, before anything is asked.
    expect(page.locator("main")).to_contain_text("only support can clear your multi-factor authentication")
    expect(page.get_by_role("heading", name="Have this ready")).to_be_visible()
    portal.step("what-to-do", shot=shots)
    page.get_by_role("button", name="Ask support to clear MFA").click()
    sent = page.get_by_role("status").filter(has_text="Request sent.")
    expect(sent).to_contain_text("Support will contact you to check who you are before anything changes.")
    expect(page.get_by_role("button", name="Ask support to clear MFA")).to_have_count(0)
    portal.step("request-sent", shot=shots)


def clear_from_the_queue(support, email: str, *, name: str, practice: str, method: str, admin: str,
                         shots: bool) -> None:
    """Support's queue: the request names the user, practice, method and admin; clear it with reason and ticket."""
    page = support.page
    queue = page.get_by_role("region", name="Lost access: requests to clear MFA")
    request = queue.locator("article.request").filter(has_text=email)
    expect(request).to_have_count(1)
    expect(request.get_by_role("heading")).to_have_text(f"{name} ({email})")
    expect(request).to_contain_text(practice)
    expect(request).to_contain_text(f"practice admin: {admin}")
    expect(request).to_contain_text(method)
    request.get_by_label("Reason").fill("Lost phone; identity checked by a call-back to the practice.")
    request.get_by_label("Support ticket reference").fill("SUP-1042")
    support.step("queue", shot=shots)
    request.get_by_role("button", name=re.compile(r"^Clear MFA")).click()
    support.expect_path("/support/")
    support.expect_flash(f"MFA settings cleared for {email}. Their sessions were ended and they were emailed.")
    expect(queue.locator("article.request")).to_have_count(0)
    expect(queue).to_contain_text("No lost-access requests.")
    support.step("cleared", shot=shots)


@pytest.mark.sizes("desktop", "phone")
def test_a_lost_phone_is_cleared_from_support_queue_and_the_password_alone_logs_in(server, open_portal):
    """User → support's queue → cleared → the user logs in with the password alone (MFA optional)."""
    user = open_portal(server, flow="lost-phone")
    set_up_sms(user, CLINICIAN)
    ask_support_from_the_code_page(user, CLINICIAN, shots=True)
    # The user's email says a request was made, and what to do if it wasn't them.
    requested_id, notice = user.read_message(CLINICIAN, "email", subject=REQUESTED)
    assert "If this wasn't you" in notice
    assert "Forgot password" in notice
    assert re.search(r"\b\d{6}\b", notice) is None, "a notice never carries a code"

    support = open_portal(server, flow="lost-phone-support")
    support.enter_support_area()
    clear_from_the_queue(support, CLINICIAN, name="Casey Clinician", practice="Demo Family Practice",
                         method="SMS to (***) ***-0143", admin="Alex Admin", shots=support.size == "desktop")
    _, cleared = support.read_message(CLINICIAN, "email", subject=CLEARED, newer_than=requested_id)
    assert "cleared" in cleared

    # The password alone opens the dashboard, which says MFA is off and where to set it up.
    page = user.page
    user.log_in(CLINICIAN)
    user.expect_dashboard()
    expect(page.locator("#mfa-notice")).to_contain_text("Multi-factor authentication is off")
    expect(page.locator("#own-mfa")).to_contain_text("Off")
    user.step("logged-in")


def test_a_cleared_user_of_a_practice_that_requires_mfa_sets_it_up_again(server, open_portal):
    """After support clears MFA in a practice that requires it, does Log In lead to Choose MFA Device?"""
    user = open_portal(server, flow="lost-app")
    page = user.page
    # Required MFA Clinic: the first Log In sets up an authenticator app.
    user.log_in(PROVIDER)
    user.expect_path("/account/security")
    user.choose_device("Authenticator Apps")
    secret = user.manual_key()
    page.get_by_role("link", name="Continue").click()
    user.enter_code(totp_code(secret))
    user.expect_dashboard()
    user.log_out()

    ask_support_from_the_code_page(user, PROVIDER, shots=False)
    # Asking again while the request is open files nothing more, and says the same.
    user.goto("/login/lost-access")
    page.get_by_role("button", name="Ask support to clear MFA").click()
    expect(page.get_by_role("status").filter(has_text="Request sent.")).to_be_visible()
    user.check()

    support = open_portal(server, flow="lost-app-support")
    support.enter_support_area()
    queue = support.page.get_by_role("region", name="Lost access: requests to clear MFA")
    expect(queue.locator("article.request")).to_have_count(1)
    clear_from_the_queue(support, PROVIDER, name="Pat Provider", practice="Required MFA Clinic",
                         method="Authenticator Apps", admin="Robin Admin", shots=False)

    # The practice requires MFA: the password leads straight to Choose MFA Device.
    user.log_in(PROVIDER)
    user.expect_path("/account/security")
    expect(page.locator("#enroll-required")).to_contain_text("Your practice requires multi-factor authentication")
    expect(page.get_by_role("group", name="Choose MFA Device:")).to_be_visible()
    user.check()
    user.choose_device("Email")
    user.expect_path("/login/code")
    _, code = user.read_code(PROVIDER, "email")
    user.enter_code(code)
    user.expect_dashboard()
    user.check()
