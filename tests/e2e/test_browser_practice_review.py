"""A practice admin reviews who has MFA: filter, pages, CSV download, and asking support."""

import csv
import io
import re

from playwright.sync_api import expect

ADMIN = "admin@demo.test"


def test_practice_admin_reviews_users_without_mfa_pages_and_downloads_csv(crowded_server, open_portal):
    """Can a practice admin list the users without MFA, page through them and download them?"""
    portal = open_portal(crowded_server, flow="admin-review")
    page = portal.page
    portal.log_in(ADMIN)
    # The dashboard: one's own MFA, the practice's coverage, and the admin's areas in the header.
    portal.expect_dashboard()
    expect(page.locator("#own-mfa")).to_contain_text("Off")
    coverage = page.locator("#practice-coverage").get_by_role("link", name="12 of 43 users have MFA")
    expect(coverage).to_be_visible()
    main_nav = page.get_by_role("navigation", name="Main")
    expect(main_nav.get_by_role("link")).to_have_text(["MFA review", "Practice users"])
    portal.step("dashboard")
    main_nav.get_by_role("link", name="MFA review").click()
    portal.expect_path("/practice/")
    expect(main_nav.get_by_role("link", name="MFA review")).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("heading", name="Demo Family Practice: multi-factor authentication")).to_be_visible()
    expect(page.locator("#requirement-state")).to_contain_text("MFA is optional in this practice.")
    expect(page.locator("#coverage")).to_contain_text("12 of 43 users have MFA")
    expect(page.locator("#would-enroll")).to_contain_text("31 users would have to enroll at next Log In.")
    expect(page.locator("#table-summary")).to_contain_text("43 users · page 1 of 2")
    portal.step("review")

    page.get_by_label("Show").select_option(value="without_mfa")
    if portal.js:
        portal.remember_live_regions()
    page.get_by_role("button", name="Apply").click()
    summary = page.locator("#table-summary")
    expect(summary).to_contain_text("31 users · page 1 of 2")
    if portal.js:
        portal.expect_swap_perceivable("#user-table", "31 users")
        expect(page.locator("#table-status")).to_have_text("Table updated: 31 users, page 1 of 2.")
    portal.expect_path(re.compile(r".*/practice/\?(.*&)?filter=without_mfa.*"))
    body_rows = page.locator("#user-table tbody tr")
    expect(body_rows).to_have_count(25)
    expect(page.locator("#user-table tbody td:nth-child(4)")).to_have_text(["No MFA"] * 25)
    portal.step("without-mfa")

    if portal.js:
        portal.remember_live_regions()
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Next page").click()
    expect(summary).to_contain_text("31 users · page 2 of 2")
    if portal.js:
        portal.expect_swap_perceivable("#user-table", "page 2 of 2")
    expect(body_rows).to_have_count(6)
    expect(page.locator("#user-table tbody td:nth-child(4)")).to_have_text(["No MFA"] * 6)
    expect(page.get_by_role("link", name="Next page")).to_have_count(0)
    portal.check()

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    download = download_info.value
    assert re.fullmatch(r"demo-family-practice-mfa-users-\d{4}-\d{2}-\d{2}\.csv", download.suggested_filename)
    rows = list(csv.DictReader(io.StringIO(open(download.path(), encoding="utf-8").read())))
    assert len(rows) == 31, "the CSV holds every page of the filtered table"
    assert {row["MFA"] for row in rows} == {"no"}
    emails = {row["Email"] for row in rows}
    assert {"clinician@demo.test", "staff@demo.test", "admin@demo.test", "member40@demo.test"} <= emails
    assert "member01@demo.test" not in emails  # has Email MFA

    # All or nothing: the admin asks support to require MFA for the whole practice.
    portal.goto("/practice/")
    page.get_by_label("Note for support (optional)").fill("Please require MFA for everyone from next Monday.")
    page.get_by_role("button", name="Send request to support").click()
    portal.expect_flash("Your request was sent to support. Its state is shown on this page.")
    expect(page.locator("#request-state")).to_contain_text("Your request to require MFA")
    expect(page.locator("#request-state")).to_contain_text("is waiting for support.")
    portal.step("request-sent")
