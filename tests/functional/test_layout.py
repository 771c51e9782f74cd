"""The layout every page shares: error pages inside it, text areas' errors, one date format.

Error pages keep the header, the role's navigation and the account menu of whoever is signed
in; when the person cannot be loaded safely (the database or the session store away) or their
session is over, the same page without anyone's parts. Dates on the pages and emails read
"2026-12-01 14:05 UTC" (portal.wording.format_time) everywhere.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import abort, render_template_string
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import TooManyRequests
from wtforms import Form, TextAreaField

from portal.enforcement import requirement
from tests.factories import PASSWORD, make_enrollment, make_practice, make_user
from tests.functional.mfa_helpers import HTMX, confirm_password

# "2026-12-01 14:05 UTC": portal.wording.format_time.
ONE_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC")
# Anything that looks like a date or a time of day, in any of the usual spellings.
DATE_LIKE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:[+-]\d{2}:?\d{2}| ?UTC| ?GMT|Z)?)?"
    r"|\b\d{1,2}/\d{1,2}/\d{2,4}\b"
    r"|\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.? \d{1,2}(?:st|nd|rd|th)?,? \d{4}\b"
    r"|\b\d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]* \d{4}\b"
    r"|\b\d{1,2}:\d{2}(?::\d{2})?\s?(?:[AaPp]\.?[Mm]\.?)?")


def dates_in(text: str) -> list[str]:
    """Every date-like piece of `text`: a date and its time read as one piece."""
    return [match.group(0) for match in DATE_LIKE.finditer(text)]


def assert_one_format(text: str, *, expected: int) -> None:
    found = dates_in(text)
    assert len(found) >= expected, f"expected {expected} dates in: {text}"
    assert all(ONE_FORMAT.fullmatch(date) for date in found), found


def header(html: str) -> str:
    return html[html.index('<header class="site-header">'):html.index("</header>")]


def signed_in(app, email: str, *, role: str = "clinician", name: str = "Morgan Menu", practice=None):
    make_user(email, role=role, display_name=name, practice=practice)
    client = app.test_client()
    assert client.post("/login", data={"email": email, "password": PASSWORD}).status_code == 303
    return client


@pytest.fixture
def failing(make_app, app):
    """The app with views that fail the ways a view can: abort with a status, raise, lose the database."""
    failing = make_app(PROPAGATE_EXCEPTIONS=False)

    @failing.route("/fail/<int:status>")
    def fail(status):
        if status == 429:
            raise TooManyRequests()
        abort(status)

    @failing.route("/fail/crash")
    def crash():
        raise RuntimeError("internals")

    @failing.route("/fail/database")
    def database():
        raise OperationalError("SELECT 1", {}, Exception("the database went away"))

    return failing


# -- error pages inside the layout ----------------------------------------------------------------


@pytest.mark.parametrize("path, status, message", [
    ("/no-such-page", 404, "We could not find that page."),
    ("/practice/", 403, "You do not have access to this page."),
    ("/logout", 405, "That action is not allowed here."),
    ("/fail/400", 400, "The request could not be understood."),
    ("/fail/429", 429, "Too many attempts. Wait a moment and try again."),
    ("/fail/crash", 500, "Something went wrong on our side."),
    ("/fail/503", 503, "The portal is briefly unavailable."),
])
def test_error_pages_keep_the_header_and_the_account_menu(failing, path, status, message):
    """Does a signed-in clinician's error page keep the header with their name, Account
    Settings and Log Out, and say what went wrong?"""
    client = signed_in(failing, "menu@example.test")
    response = client.get(path)
    html = response.get_data(as_text=True)
    assert response.status_code == status
    assert message in html
    top = header(html)
    assert 'class="brand"' in top and "Practice Portal" in top
    assert '<summary>Morgan Menu</summary>' in top
    assert ">Account Settings</a>" in top and "Log Out" in top
    assert "internals" not in html and "Traceback" not in html


def test_a_practice_admins_error_page_keeps_the_role_navigation(failing, app):
    """Does a practice admin's 404 keep MFA review and Practice users in the header?"""
    client = signed_in(failing, "boss@example.test", role="practice_admin", name="Bea Boss")
    html = client.get("/practice/users/999999").get_data(as_text=True)
    top = header(html)
    assert '<nav aria-label="Main"' in top
    assert ">MFA review</a>" in top and ">Practice users</a>" in top and "Bea Boss" in top


def test_a_404_for_someone_not_signed_in_renders_without_a_menu_or_a_session(client):
    """Anonymous: the 404 page in the usual layout, no menu, and no session created for it."""
    response = client.get("/no-such-page")
    html = response.get_data(as_text=True)
    assert response.status_code == 404
    assert "We could not find that page." in html
    assert 'class="brand" href="/login"' in header(html)
    assert "user-menu" not in html and "Log Out" not in html
    assert "X-CSRFToken" not in html
    assert "Set-Cookie" not in response.headers


def test_an_error_for_an_htmx_swap_is_the_message_alone(failing):
    """HTMX aimed at part of a page gets the error's fragment, not a second header."""
    client = signed_in(failing, "swap@example.test")
    response = client.get("/fail/403", headers=HTMX)
    html = response.get_data(as_text=True)
    assert response.status_code == 403
    assert "You do not have access to this page." in html
    assert "<header" not in html and "Morgan Menu" not in html


def test_the_database_failing_gives_the_503_page_without_anyones_parts(failing):
    """The database away: the 503 page in the layout, but nobody's name or menu (the user
    cannot be loaded), and a reference to quote."""
    client = signed_in(failing, "db@example.test")
    response = client.get("/fail/database")
    html = response.get_data(as_text=True)
    assert response.status_code == 503
    assert "briefly unavailable" in html and response.headers["X-Request-ID"] in html
    assert '<header class="site-header">' in html
    assert "Morgan Menu" not in html and "Log Out" not in html


def test_a_404_after_the_session_went_idle_shows_no_name(failing, clock):
    """A path that matches no page never meets the Log In gate: after 30 idle minutes its 404
    page still shows nobody's name or menu."""
    client = signed_in(failing, "idle@example.test")
    assert "Morgan Menu" in client.get("/no-such-page").get_data(as_text=True)
    clock.advance(minutes=31)
    html = client.get("/no-such-page").get_data(as_text=True)
    assert "We could not find that page." in html
    assert "Morgan Menu" not in html and "Log Out" not in html


def test_the_pages_nginx_serves_show_the_layout_for_nobody(app):
    """static/errors/*: the portal's header, no one's menu, no CSRF token baked into a file."""
    from pathlib import Path

    for page in sorted((Path(app.static_folder) / "errors").glob("*.html")):
        html = page.read_text(encoding="utf-8")
        assert '<header class="site-header">' in html, page.name
        assert "user-menu" not in html and "X-CSRFToken" not in html and "csrf" not in html.lower(), page.name


# -- text areas' errors ----------------------------------------------------------------------------


class NoteForm(Form):
    note = TextAreaField("Note", description="What the user will read.")


def test_a_text_area_with_an_error_is_marked_and_described_like_an_input(app):
    """A text area with an error: aria-invalid, described by its hint and its error, the error
    text in an alert, and the same red border rule as an input."""
    from pathlib import Path

    form = NoteForm()
    form.note.errors = ["Give a reason."]
    with app.test_request_context():
        html = render_template_string('{% from "_field.html" import field %}{{ field(form.note) }}', form=form)
    textarea = re.search(r"<textarea[^>]*>", html).group(0)
    assert 'aria-invalid="true"' in textarea
    assert 'aria-describedby="note-hint note-error"' in textarea
    assert re.search(r'<p class="error" id="note-error" role="alert">Give a reason.</p>', html)
    css = (Path(app.static_folder) / "css" / "portal.css").read_text()
    assert re.search(r'^\.field \[aria-invalid="true"\] \{[^}]*border-color: var\(--error\)', css, re.M)

    form = NoteForm()
    with app.test_request_context():
        html = render_template_string('{% from "_field.html" import field %}{{ field(form.note) }}', form=form)
    assert "aria-invalid" not in html and "note-error" not in html


# -- one date format -------------------------------------------------------------------------------


def test_the_security_tab_says_when_mfa_was_set_up_in_the_one_format(client, outbox, clock):
    """Account Settings | Security: 'set up 2026-12-01 14:05 UTC', not another spelling."""
    user = make_user("dated@example.test")
    make_enrollment(user, "email")
    client.post("/login", data={"email": "dated@example.test", "password": PASSWORD})
    from tests.functional.mfa_helpers import last_code

    client.post("/login/code", data={"code": last_code(outbox, "dated@example.test", "email")})
    confirm_password(client, PASSWORD)
    html = client.get("/account/security").get_data(as_text=True)
    state = re.search(r'<p id="mfa-state">(.*?)</p>', html, re.S).group(1)
    assert_one_format(state, expected=1)
    assert f"set up {clock.now():%Y-%m-%d %H:%M} UTC" in state


def test_the_banner_and_the_requirement_emails_use_the_one_format(app, clock, outbox):
    """A practice that will require MFA: the dashboard's banner and the email say when in the
    one format, with its zone."""
    practice = make_practice("Dated Clinic")
    support = make_user("support@dated.test", role="support")
    client = signed_in(app, "late@dated.test", practice=practice, name="Lee Late")
    starts = requirement.start_of_day((clock.now() + timedelta(days=10)).date())
    requirement.set_requirement(practice, True, actor=support, reason="two weeks", now=clock.now(), starts=starts)

    banner = re.search(r'<p class="flash flash-info" id="requirement-banner".*?</p>',
                       client.get("/").get_data(as_text=True), re.S).group(0)
    assert_one_format(banner, expected=1)
    assert f"{starts:%Y-%m-%d} 00:00 UTC" in banner

    notice = outbox.last("late@dated.test", "email")
    for text in (notice.subject, notice.body_text, notice.body_html):
        assert_one_format(text, expected=1)
        assert f"{starts:%Y-%m-%d} 00:00 UTC" in text


def test_the_account_locked_email_says_when_in_the_one_format(app, outbox, clock):
    """Too many wrong passwords: the email says when the account was locked, in the one format."""
    make_user("locked@dated.test")
    client = app.test_client()
    for _ in range(app.config["PASSWORD_MAX_FAILURES"]):
        client.post("/login", data={"email": "locked@dated.test", "password": "wrong password"})
    notice = outbox.last("locked@dated.test", "email")
    assert "locked" in notice.subject
    for text in (notice.body_text, notice.body_html):
        assert_one_format(text, expected=1)
        assert f"at {clock.now():%Y-%m-%d %H:%M} UTC" in text


def test_dates_in_other_spellings_are_caught():
    """The check itself: would another spelling of a date be noticed?"""
    for other in ("Dec 1, 2026", "2026-12-01T14:05:00+00:00", "12/01/2026", "2026-12-01", "14:05", "1 December 2026",
                  "2026-12-01 14:05:09 UTC", "2:05 PM"):
        assert any(not ONE_FORMAT.fullmatch(date) for date in dates_in(f"at {other}.")), other
    assert dates_in("at 2026-12-01 14:05 UTC.") == ["2026-12-01 14:05 UTC"]
