"""A person at a browser: steps through the portal, reads the dev outbox, checks each page.

Every checked step makes sure the page is no wider than the window (at desktop and at phone
size); with JavaScript on it also runs axe-core and, when SCREENSHOTS_DIR is set, saves a
full-page screenshot for the user guide. Console errors, uncaught exceptions, CSP violations
and unexpected error responses fail the test.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import pyotp
from playwright.sync_api import Browser, Locator, Page, expect

from tests.e2e.server import DEMO_PASSWORD, ROOT, Server

AXE_PATH = ROOT / "node_modules" / "axe-core" / "axe.min.js"
# The window sizes a test can run at (see the `sizes` marker in conftest.py): a desktop window,
# and a 390 x 844 phone (touch, mobile layout viewport, so a page wider than the screen shows).
SIZES = {
    "desktop": {"viewport": {"width": 1100, "height": 800}},
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
              "device_scale_factor": 1},
}
BLOCKING_IMPACTS = {"serious", "critical"}
CODE_RE = re.compile(r"\b(\d{6})\b")

# axe findings below "serious", gathered for the end-of-run summary (they do not fail a test).
MINOR_FINDINGS: dict[str, set[str]] = {}


def screenshots_dir() -> Path | None:
    value = os.environ.get("SCREENSHOTS_DIR")
    return Path(value).resolve() if value else None


class Shots:
    """Numbering of a test's screenshots, per flow: <flow>-<NN>-<step>.png."""

    def __init__(self):
        self.counters: dict[str, int] = {}

    def next_path(self, flow: str, step: str) -> Path | None:
        directory = screenshots_dir()
        if directory is None:
            return None
        self.counters[flow] = self.counters.get(flow, 0) + 1
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f"{flow}-{self.counters[flow]:02d}-{step}.png"


class Portal:
    """One person's browser context (cookies, tabs) on one test server."""

    def __init__(self, browser: Browser, server: Server, *, js: bool, flow: str, shots: Shots,
                 size: str = "desktop", permissions: tuple[str, ...] = ()):
        self.server = server
        self.js = js
        self.size = size
        # Phone pictures sit beside the desktop ones: <flow>-phone-<NN>-<step>.png.
        self.flow = flow if size == "desktop" else f"{flow}-{size}"
        self.shots = shots
        self.problems: list[str] = []
        self.expected_rejections: set[str] = set()
        self.screenshots = js and screenshots_dir() is not None
        self.context = browser.new_context(java_script_enabled=js, accept_downloads=True, **SIZES[size])
        if permissions:
            self.context.grant_permissions(list(permissions), origin=server.base_url)
        self.context.set_default_timeout(10_000)
        self.context.on("page", self._watch)
        self.page = self.context.new_page()
        self._outbox_checked = False
        self._outbox_tab: Page | None = None

    # ----------------------------------------------------------------- watching for trouble
    def _watch(self, page: Page) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.problems.append(f"uncaught exception on {page.url}: {error}"))
        page.on("response", self._on_response)

    def _on_console(self, message) -> None:
        text = message.text
        if "Content-Security-Policy" in text or "Content Security Policy" in text:
            # Playwright's screenshots may add an empty style attribute; nothing else may break the CSP.
            if self.screenshots and "style" in text:
                return
            self.problems.append(f"CSP violation: {text}")
            return
        if message.type != "error":
            return
        url = (message.location or {}).get("url") or ""
        if re.match(r"Failed to load resource: the server responded with a status of 4\d\d", text) \
                and urlsplit(url).path in self.expected_rejections:
            return
        self.problems.append(f"console error on {url}: {text}")

    def _on_response(self, response) -> None:
        status = response.status
        path = urlsplit(response.url).path
        if status >= 500 or (status >= 400 and path not in self.expected_rejections):
            self.problems.append(f"unexpected {status} from {response.request.method} {path}")

    def expect_rejection(self, path: str) -> None:
        """The next request to `path` is deliberately bad input: its 4xx is expected."""
        self.expected_rejections.add(path)

    def assert_clean(self) -> None:
        assert not self.problems, "browser problems:\n" + "\n".join(self.problems)

    def close(self) -> None:
        self.context.close()

    # ----------------------------------------------------------------- checks at each step
    def axe(self, page: Page | None = None) -> None:
        """Run axe-core on the page; fail on serious or critical violations."""
        if not self.js:
            return
        page = page or self.page
        if not page.evaluate("() => typeof window.axe !== 'undefined'"):
            page.evaluate(AXE_PATH.read_text())
        violations = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
        blocking = []
        for violation in violations:
            where = "; ".join(" ".join(node["target"]) + " " + node["html"][:160] for node in violation["nodes"][:5])
            if violation["impact"] in BLOCKING_IMPACTS:
                blocking.append(f"{violation['id']} ({violation['impact']}): {violation['help']} at {where}")
            else:
                path = urlsplit(page.url).path
                finding = f"{violation['id']} ({violation['impact']}): {violation['help']}"
                MINOR_FINDINGS.setdefault(finding, set()).add(path)
        assert not blocking, f"axe found problems on {page.url}:\n" + "\n".join(blocking)

    def assert_fits(self, page: Page | None = None) -> None:
        """The page is no wider than the window: nothing makes it scroll sideways.

        Compared with the window's set width, not the layout viewport's (a phone's widens to
        fit an overflowing page). Names the elements that stick out, to find the cause.
        """
        page = page or self.page
        limit = page.viewport_size["width"]
        width, wide = page.evaluate(
            """limit => {
                const width = document.documentElement.scrollWidth;
                if (width <= limit) return [width, []];
                const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
                    + (el.classList.length ? '.' + Array.from(el.classList).join('.') : '')
                    + ' "' + el.textContent.trim().slice(0, 30) + '"';
                const wide = Array.from(document.body.querySelectorAll('*'))
                    .filter(el => el.getBoundingClientRect().right > limit + 0.5)
                    .filter(el => !el.parentElement || el.parentElement.getBoundingClientRect().right <= limit + 0.5)
                    .slice(0, 5).map(el => name(el) + ' (right edge ' + Math.round(el.getBoundingClientRect().right)
                                           + ' px)');
                return [width, wide];
            }""", limit)
        assert width <= limit, (f"{page.url} is {width} px wide in a {limit} px window; "
                                f"sticking out: {', '.join(wide) or 'nothing found'}")

    def step(self, name: str, *, shot: bool = True) -> None:
        """A step of the flow as a person sees it: no wider than the window, checked by axe, and
        photographed for the guide."""
        self.settle()
        self.assert_fits()
        self.axe()
        self.assert_clean()
        if shot and self.screenshots:
            path = self.shots.next_path(self.flow, name)
            if path is not None:
                self.page.screenshot(path=str(path), full_page=True, caret="initial")

    def check(self) -> None:
        """A step the guide does not show: checked, not photographed."""
        self.step("check", shot=False)

    def settle(self) -> None:
        """Wait until the page has loaded and no HTMX request is in flight."""
        self.page.wait_for_load_state("load")
        if self.js:
            self.page.wait_for_function(
                "() => window.htmx && !document.querySelector('.htmx-request, .htmx-settling, .htmx-swapping')")

    # ----------------------------------------------------------------- moving around
    def url(self, path: str) -> str:
        return self.server.url(path)

    def goto(self, path: str) -> None:
        self.page.goto(self.url(path))

    def expect_path(self, path: str | re.Pattern) -> None:
        if isinstance(path, str):
            pattern = re.compile(re.escape(self.server.base_url + path) + r"(\?.*)?$")
        else:
            pattern = path
        expect(self.page).to_have_url(pattern)

    def fill_login(self, email: str, password: str = DEMO_PASSWORD) -> None:
        self.goto("/login")
        expect(self.page.get_by_role("heading", name="Log In")).to_be_visible()
        self.page.get_by_label("Email").fill(email)
        self.page.get_by_label("Password", exact=True).fill(password)

    def log_in(self, email: str, password: str = DEMO_PASSWORD) -> None:
        self.fill_login(email, password)
        self.page.get_by_role("button", name="Log In").click()
        self.page.wait_for_load_state("load")

    def open_menu(self) -> Locator:
        """Open the top-right menu (the user's name) and return it."""
        menu = self.page.locator("details.user-menu")
        if menu.get_attribute("open") is None:
            menu.locator("summary").click()
        expect(menu.locator("ul")).to_be_visible()
        return menu

    def menu(self, item: str) -> None:
        self.open_menu().get_by_role("link", name=item, exact=True).click()
        self.page.wait_for_load_state("load")

    def log_out(self) -> None:
        self.open_menu().get_by_role("button", name="Log Out").click()
        self.expect_path("/login")
        expect(self.page.get_by_text("You have been logged out.")).to_be_visible()

    def confirm_password(self, password: str = DEMO_PASSWORD) -> None:
        """Security tab: re-enter the password."""
        panel = self.page.locator("#security-panel")
        panel.get_by_label("Password", exact=True).fill(password)
        panel.get_by_role("button", name="Continue").click()
        expect(self.page.get_by_role("group", name="Choose MFA Device:")).to_be_visible()
        if self.js:
            self.expect_focus_within("#mfa-heading")

    def choose_device(self, label: str) -> None:
        self.page.get_by_role("group", name="Choose MFA Device:").get_by_role("button", name=label, exact=True).click()

    def code_field(self) -> Locator:
        return self.page.get_by_label("Enter the code provided")

    def enter_code(self, code: str, *, button: str = "Verify") -> None:
        field = self.code_field()
        check_code_field(field)
        field.fill(code)
        self.page.get_by_role("button", name=button, exact=True).click()

    def enter_support_area(self, email: str = "support@portal.test") -> str:
        """Support's first Log In: set up the required authenticator app, then confirm with the
        password and the app's next code to enter the support area. Returns the app's secret."""
        page = self.page
        self.log_in(email)
        self.expect_path("/account/security")
        self.choose_device("Authenticator Apps")
        secret = self.manual_key()
        page.get_by_role("link", name="Continue").click()
        self.enter_code(totp_code(secret))
        self.expect_dashboard()
        self.menu("Support")
        self.expect_path("/support/confirm")
        page.get_by_label("Password", exact=True).fill(DEMO_PASSWORD)
        # The code just used to set up the app is spent; the app's next one is accepted.
        self.code_field().fill(totp_code(secret, next_step=True))
        page.get_by_role("button", name="Confirm").click()
        self.expect_path("/support/")
        expect(page.get_by_role("navigation", name="Support")).to_be_visible()
        return secret

    def expect_dashboard(self) -> None:
        self.expect_path("/")
        expect(self.page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()

    def expect_focus_within(self, selector: str) -> None:
        """After a swap, keyboard focus is on (or inside) `selector`."""
        self.page.wait_for_function(
            "selector => document.activeElement && document.activeElement.closest(selector) !== null",
            arg=selector, timeout=5_000)

    def remember_live_regions(self) -> None:
        """Note the live regions on the page before an HTMX swap (see expect_swap_perceivable)."""
        self.page.evaluate("() => { window.__e2eLiveRegions = Array.from("
                           "document.querySelectorAll('[aria-live], [role=status], [role=alert], [role=log]')); }")

    def expect_swap_perceivable(self, container: str, text: str) -> None:
        """After a swap that shows `text`: focus moved into the new content (`container`), or the
        text appeared in a live region that was already on the page, or in a role=alert.

        A live region that is itself swapped in is not reliably announced by screen readers,
        so it does not count.
        """
        self.page.wait_for_function(
            """([container, text]) => {
                const focused = document.activeElement;
                const box = document.querySelector(container);
                if (box && box.textContent.includes(text) && focused && box.contains(focused)
                    && focused !== document.body) return true;
                const kept = (window.__e2eLiveRegions || [])
                    .some(el => el.isConnected && el.textContent.includes(text));
                if (kept) return true;
                return Array.from(document.querySelectorAll('[role=alert]')).some(el => el.textContent.includes(text));
            }""", arg=[container, text], timeout=5_000)

    def expect_flash(self, text: str | re.Pattern) -> Locator:
        """A message in the polite live region every page has (#flash, role=status)."""
        flash = self.page.locator("#flash[role=status][aria-live=polite]")
        expect(flash).to_contain_text(text)
        return flash

    # ----------------------------------------------------------------- the dev outbox
    def read_message(self, recipient: str, channel: str, *, newer_than: int = 0, subject: str | None = None,
                     wait: float = 5) -> tuple[int, str]:
        """Open the dev outbox in another tab and read the newest message to `recipient`.

        Returns (message id, body), waiting up to `wait` seconds for one newer than `newer_than`.
        """
        if self._outbox_tab is None or self._outbox_tab.is_closed():
            self._outbox_tab = self.context.new_page()
        tab = self._outbox_tab
        deadline = time.monotonic() + wait
        while True:
            tab.goto(self.url("/dev/outbox"))
            expect(tab.get_by_role("heading", name="Dev outbox")).to_be_visible()
            if not self._outbox_checked:
                self.axe(tab)
                self._outbox_checked = True
            messages = tab.locator("article.outbox-message").filter(
                has=tab.get_by_role("heading", name=f"{channel.upper()} to {recipient}", exact=True))
            if subject:
                messages = messages.filter(has_text=subject)
            if messages.count():
                newest = messages.first
                message_id = int(newest.get_attribute("id").removeprefix("message-"))
                if message_id > newer_than:
                    return message_id, newest.locator("pre.message-body").inner_text()
            if time.monotonic() > deadline:
                raise AssertionError(f"no new {channel} message to {recipient} in the dev outbox")
            tab.wait_for_timeout(200)

    def latest_message_id(self, recipient: str, channel: str, subject: str | None = None) -> int:
        """The id of the newest message to `recipient` (0 if none): later reads want newer ones."""
        try:
            return self.read_message(recipient, channel, subject=subject, wait=0)[0]
        except AssertionError:
            return 0

    def read_code(self, recipient: str, channel: str, *, newer_than: int = 0) -> tuple[int, str]:
        """The 6-digit code in the newest SMS or email to `recipient`: (message id, code)."""
        subject = "Your verification code" if channel == "email" else None
        message_id, body = self.read_message(recipient, channel, newer_than=newer_than, subject=subject)
        match = CODE_RE.search(body)
        assert match, f"no 6-digit code in: {body}"
        return message_id, match.group(1)

    # ----------------------------------------------------------------- authenticator apps
    def manual_key(self) -> str:
        """The key typed into an app by hand: read from the page, spaces removed."""
        key = self.page.locator("#manual-key")
        expect(key).to_be_visible()
        text = key.inner_text()
        assert re.fullmatch(r"[A-Z2-7]{4}( [A-Z2-7]{1,4})+", text), text
        return text.replace(" ", "")


def totp_code(secret: str, *, next_step: bool = False) -> str:
    """The code an authenticator app shows now (or in the next 30-second step).

    The portal refuses a step that was already used, so a second code right after the first
    one is taken from the next step, which the portal accepts (one step either side).
    """
    return pyotp.TOTP(secret).at(time.time() + (30 if next_step else 0))


def check_code_field(field: Locator) -> None:
    """A code field suits phones, password managers and pasting: one-time-code, numeric, labelled."""
    expect(field).to_be_visible()
    expect(field).to_have_attribute("autocomplete", "one-time-code")
    expect(field).to_have_attribute("inputmode", "numeric")
    field_id = field.get_attribute("id")
    label = field.page.locator(f"label[for='{field_id}']")
    expect(label).to_be_visible()
    expect(label).to_have_text(re.compile(r"\S"))
    # Nothing truncates a pasted code with spaces (as copied from some apps or messages).
    maxlength = field.get_attribute("maxlength")
    assert maxlength is None or int(maxlength) >= 7, maxlength
