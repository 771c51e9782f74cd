"""Every page on a phone: nothing wider than a 390 px screen, tables scrolling in their own region.

A clinician, a practice admin and support walk through every page they can reach at 390 x 844,
with JavaScript on and off. On each page the document is no wider than the viewport, no
element sticks out past its right edge, and a table wider than its column scrolls inside a
named, focusable region (templates/_table.html). Headings that receive focus (after a swap, or
`autofocus`) look like headings, while buttons and links keep their visible focus.
"""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.driver import totp_code
from tests.e2e.server import DEMO_PASSWORD

PHONE = {"width": 390, "height": 844}
CLINICIAN = "clinician@demo.test"
ADMIN = "admin@demo.test"
SUPPORT = "support@portal.test"

# What sticks out of a phone's screen on this page: the document's width, any element whose
# right edge passes the viewport (outside a table's own scrolling region), and any table wider
# than its column that does not scroll inside a named, focusable region.
OVERFLOW_JS = """
() => {
  const width = window.innerWidth;
  const problems = [];
  const describe = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
      + (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : '')
      + ' "' + (el.textContent || '').trim().slice(0, 40) + '"';
  const scrolling = document.documentElement.scrollWidth;
  if (scrolling > width) problems.push(`the page is ${scrolling}px wide`);
  for (const el of document.body.querySelectorAll('*')) {
    if (el.closest('.table-scroll') || !el.checkVisibility()) continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    if (box.right > width + 0.5) problems.push(`${describe(el)} reaches ${Math.round(box.right)}px`);
  }
  for (const table of document.querySelectorAll('table')) {
    const parent = table.parentElement;
    if (table.getBoundingClientRect().width <= parent.clientWidth + 0.5) continue;
    const region = table.closest('.table-scroll');
    if (!region) { problems.push(`${describe(table)} is wider than its column, outside a scrolling region`); continue; }
    if (region.getAttribute('role') !== 'region' || !(region.getAttribute('aria-label') || '').trim()
        || region.getAttribute('tabindex') !== '0') {
      problems.push(`${describe(table)} scrolls in a region without a name or tabindex`);
    }
  }
  return problems;
}
"""

# The focus style a heading shows: no outline, no box, no highlight.
FOCUS_STYLE_JS = """
el => {
  const style = getComputedStyle(el);
  return {outline: style.outlineStyle === 'none' || parseFloat(style.outlineWidth) === 0 ? 'none' : style.outlineStyle,
          background: style.backgroundColor, shadow: style.boxShadow,
          selected: String(window.getSelection())};
}
"""


class Walk:
    """One person's pages at phone size: each page's problems, reported together at the end."""

    def __init__(self, portal):
        self.portal = portal
        self.page = portal.page
        self.page.set_viewport_size(PHONE)
        self.problems: list[str] = []
        self.pages = 0

    def look(self, name: str) -> None:
        """Check this page as it is (and with the account menu open, when there is one)."""
        self.portal.check()
        self.pages += 1
        found = self.page.evaluate(OVERFLOW_JS)
        menu = self.page.locator("details.user-menu")
        if menu.count():
            self.portal.open_menu()
            found += [f"menu open: {problem}" for problem in self.page.evaluate(OVERFLOW_JS)]
            menu.locator("summary").click()
        self.problems += [f"{name} ({self.page.url}): {problem}" for problem in dict.fromkeys(found)]

    def assert_fits(self, at_least: int) -> None:
        assert self.pages >= at_least, f"only {self.pages} pages were looked at"
        assert not self.problems, "wider than a 390 px phone:\n" + "\n".join(self.problems)


def test_every_page_a_clinician_reaches_fits_a_phone(server, open_portal):
    """On a 390 px phone, do Log In, the code page, lost access, every MFA set-up step, the
    dashboard and the error pages fit the screen?"""
    portal = open_portal(server, flow="phone-clinician")
    page = portal.page
    walk = Walk(portal)
    for path in ("/login", "/forgot-password", "/login/lost-access", "/reset-password/not-a-real-link"):
        if path.startswith("/reset"):
            portal.expect_rejection(path)
        portal.goto(path)
        walk.look(path)
    portal.expect_rejection("/no-such-page")
    portal.goto("/no-such-page")
    walk.look("404, nobody signed in")

    portal.log_in(CLINICIAN)
    portal.expect_dashboard()
    walk.look("dashboard")
    portal.goto("/account/security")
    walk.look("security: password")
    portal.confirm_password()
    walk.look("choose device")
    portal.choose_device("SMS")
    expect(page.get_by_label("Phone Number")).to_be_visible()
    walk.look("phone number")
    page.get_by_label("Phone Number").fill("(202) 555-0143")
    page.get_by_role("button", name="Save Phone Number").click()
    expect(portal.code_field()).to_be_visible()
    walk.look("sms code")
    portal.choose_device("Authenticator Apps")
    secret = portal.manual_key()
    walk.look("authenticator QR")
    page.get_by_role("link", name="Continue").click()
    expect(portal.code_field()).to_be_visible()
    walk.look("authenticator code")
    portal.enter_code(totp_code(secret))
    portal.expect_dashboard()
    walk.look("dashboard with MFA")
    portal.expect_rejection("/no-such-page")
    portal.goto("/no-such-page")
    expect(page.locator("details.user-menu summary")).to_have_text("Casey Clinician")
    walk.look("404, signed in")

    portal.log_out()
    walk.look("logged out")
    portal.log_in(CLINICIAN)
    portal.expect_path("/login/code")
    walk.look("code page")
    page.get_by_role("link", name="Can't use this method?").click()
    walk.look("lost access")
    walk.assert_fits(at_least=15)


def test_every_page_a_practice_admin_reaches_fits_a_phone(server, open_portal):
    """On a 390 px phone, do the review, the users, a member's page and the security events fit?"""
    portal = open_portal(server, flow="phone-admin")
    page = portal.page
    walk = Walk(portal)
    portal.log_in(ADMIN)
    portal.expect_dashboard()
    walk.look("dashboard")
    portal.goto("/practice/")
    walk.look("MFA review")
    portal.goto("/practice/users")
    walk.look("practice users")
    page.get_by_role("link", name="Casey Clinician").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Casey Clinician")
    walk.look("member")
    portal.goto("/practice/audit")
    walk.look("security events")
    portal.goto("/account/security")
    walk.look("security: password")
    walk.assert_fits(at_least=6)


def test_every_page_support_reaches_fits_a_phone(server, open_portal):
    """On a 390 px phone, do support's enrollment, confirmation, queue, search, user, practice
    and audit pages fit?"""
    portal = open_portal(server, flow="phone-support")
    page = portal.page
    walk = Walk(portal)
    portal.log_in(SUPPORT)
    portal.expect_path("/account/security")
    walk.look("required enrollment")
    portal.choose_device("Authenticator Apps")
    secret = portal.manual_key()
    walk.look("authenticator QR")
    page.get_by_role("link", name="Continue").click()
    portal.enter_code(totp_code(secret))
    portal.expect_dashboard()
    walk.look("dashboard")
    portal.goto("/support/confirm")
    walk.look("confirm it's you")
    page.get_by_label("Password", exact=True).fill(DEMO_PASSWORD)
    portal.code_field().fill(totp_code(secret, next_step=True))
    page.get_by_role("button", name="Confirm").click()
    portal.expect_path("/support/")
    walk.look("support queue")
    page.get_by_label(re.compile("Name, email or practice|Email or practice name")).fill("demo")
    page.get_by_role("button", name="Search").click()
    walk.look("search results")
    page.get_by_role("link", name=CLINICIAN).first.click()
    walk.look("user")
    portal.goto("/support/")
    page.get_by_role("link", name="Demo Family Practice").first.click()
    walk.look("practice")
    portal.goto("/support/audit")
    walk.look("audit trail")
    walk.assert_fits(at_least=9)


def focus_style(locator) -> dict:
    return locator.evaluate(FOCUS_STYLE_JS)


def test_a_focused_heading_does_not_look_selected_while_controls_show_focus(server, open_portal):
    """After the password step, by keyboard, the MFA heading has focus (a screen reader starts
    there): does it look like a plain heading, while the next control reached with Tab shows
    a focus ring?"""
    portal = open_portal(server, flow="focus")
    page = portal.page
    portal.log_in(CLINICIAN)
    portal.menu("Account Settings")
    page.locator("#security-panel").get_by_label("Password", exact=True).fill(DEMO_PASSWORD)
    page.keyboard.press("Enter")
    heading = page.locator("#mfa-heading")
    # Moved there by the swap (JavaScript on) or by `autofocus` (off), after keyboard use: the
    # moment browsers draw a focus ring unless the page says otherwise.
    expect(heading).to_be_focused()
    assert focus_style(heading) == {"outline": "none", "background": "rgba(0, 0, 0, 0)", "shadow": "none",
                                    "selected": ""}

    page.keyboard.press("Tab")
    control = page.locator(":focus")
    expect(control).to_have_count(1)
    assert control.evaluate("el => el.matches('a, button, input, select, textarea, summary')")
    assert focus_style(control)["outline"] == "solid", "a control reached with Tab shows where focus is"
    portal.check()
