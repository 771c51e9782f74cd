"""A practice admin's MFA review, at desktop and phone size: a sort survives filtering, searching
and paging, and a search or filter survives sorting. The sorted column says so (aria-sort) and
no other does."""

import re

import pytest
from playwright.sync_api import expect

ADMIN = "admin@demo.test"

pytestmark = pytest.mark.sizes("desktop", "phone")


def expect_sorted(page, column: str, direction: str) -> None:
    """Exactly one column header is sorted: `column`, `direction` ("ascending"/"descending")."""
    sorted_header = page.locator("#user-table th[aria-sort]")
    expect(sorted_header).to_have_count(1)
    expect(sorted_header.get_by_role("link")).to_have_text(column)
    expect(sorted_header).to_have_attribute("aria-sort", direction)
    expect(page.get_by_role("columnheader", name=column, exact=True)).to_have_attribute("aria-sort", direction)


def sort_by(portal, column: str) -> None:
    """Click a column's header link (with JavaScript on, the table is swapped in place)."""
    page = portal.page
    if portal.js:
        portal.remember_live_regions()
    page.get_by_role("columnheader", name=column, exact=True).get_by_role("link", name=column, exact=True).click()


def apply(portal) -> None:
    if portal.js:
        portal.remember_live_regions()
    portal.page.get_by_role("button", name="Apply").click()


def emails(page):
    return page.locator("#user-table tbody td:nth-child(2)")


def names(page):
    return page.locator("#user-table tbody td:nth-child(1)")


def test_a_sorted_review_stays_sorted_when_filtered_searched_and_paged(crowded_server, open_portal):
    """Sorted by email, newest letters first: do the filter, the search and the next page keep
    that order, and keep saying so?"""
    portal = open_portal(crowded_server, flow="review-sort")
    page = portal.page
    portal.log_in(ADMIN)
    portal.goto("/practice/")
    summary = page.locator("#table-summary")
    expect(summary).to_contain_text("43 users · page 1 of 2")
    expect_sorted(page, "Name", "ascending")  # the table's own order, said as such

    sort_by(portal, "Email")
    expect_sorted(page, "Email", "ascending")
    expect(emails(page).first).to_have_text("admin@demo.test")
    sort_by(portal, "Email")
    expect_sorted(page, "Email", "descending")
    expect(emails(page)).to_have_count(25)
    expect(emails(page).nth(0)).to_have_text("staff@demo.test")
    expect(emails(page).nth(1)).to_have_text("member40@demo.test")
    portal.expect_path(re.compile(r".*/practice/\?(.*&)?sort=email&dir=desc.*"))
    if portal.js:
        portal.expect_swap_perceivable("#user-table", "43 users")
    portal.step("sorted", shot=portal.size == "desktop")

    # Filter: only the people without MFA, still by email, last first.
    page.get_by_label("Show").select_option(value="without_mfa")
    apply(portal)
    expect(summary).to_contain_text("31 users · page 1 of 2")
    expect_sorted(page, "Email", "descending")
    expect(emails(page).nth(0)).to_have_text("staff@demo.test")
    expect(emails(page).nth(1)).to_have_text("member40@demo.test")
    expect(page.locator("#user-table tbody td:nth-child(4)")).to_have_text(["No MFA"] * 25)
    if portal.js:
        expect(page.locator("#table-status")).to_have_text("Table updated: 31 users, page 1 of 2.")
    portal.check()

    # Search as well: the members without MFA (13 to 40), in the same order.
    page.get_by_label("Search name or email").fill("member")
    apply(portal)
    expect(summary).to_contain_text("28 users · page 1 of 2")
    expect_sorted(page, "Email", "descending")
    expect(emails(page)).to_have_text([f"member{number:02d}@demo.test" for number in range(40, 15, -1)])
    expect(page.get_by_label("Show")).to_have_value("without_mfa")
    portal.expect_path(re.compile(r".*/practice/\?(?=.*filter=without_mfa)(?=.*q=member)(?=.*sort=email).*"))
    portal.step("sorted-and-searched", shot=portal.size == "desktop")

    # The next page goes on in that order.
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Next page").click()
    expect(summary).to_contain_text("28 users · page 2 of 2")
    expect_sorted(page, "Email", "descending")
    expect(emails(page)).to_have_text(["member15@demo.test", "member14@demo.test", "member13@demo.test"])
    portal.check()


def test_a_searched_review_stays_searched_when_sorted_and_then_filtered(crowded_server, open_portal):
    """Searched first, then sorted by name, last first: do the search and its count stay, and
    does a filter after that keep the new order?"""
    portal = open_portal(crowded_server, flow="review-search-sort")
    page = portal.page
    portal.log_in(ADMIN)
    portal.goto("/practice/")
    summary = page.locator("#table-summary")
    search = page.get_by_label("Search name or email")
    search.fill("Member 1")
    apply(portal)
    expect(summary).to_contain_text("10 users · page 1 of 1")
    expect_sorted(page, "Name", "ascending")
    expect(names(page)).to_have_text([f"Member {number}" for number in range(10, 20)])
    portal.check()

    # Name again: last first, the same ten people.
    sort_by(portal, "Name")
    expect_sorted(page, "Name", "descending")
    expect(names(page)).to_have_text([f"Member {number}" for number in range(19, 9, -1)])
    expect(summary).to_contain_text("10 users · page 1 of 1")
    expect(search).to_have_value("Member 1")
    portal.expect_path(re.compile(r".*/practice/\?(?=.*q=Member(\+|%20)1)(?=.*sort=name)(?=.*dir=desc).*"))
    if portal.js:
        portal.expect_swap_perceivable("#user-table", "10 users")
        expect(page.locator("#table-status")).to_have_text("Table updated: 10 users, page 1 of 1.")
    portal.step("searched-then-sorted", shot=portal.size == "desktop")

    # By MFA: its label orders it (Email before no method), the search still applies.
    sort_by(portal, "MFA")
    expect_sorted(page, "MFA", "ascending")
    expect(page.locator("#user-table tbody td:nth-child(4)")).to_have_text(["Email"] * 3 + ["No MFA"] * 7)
    sort_by(portal, "Name")
    expect_sorted(page, "Name", "ascending")
    sort_by(portal, "Name")
    expect_sorted(page, "Name", "descending")
    portal.check()

    # Then a filter: only those without MFA, still last first, still searched.
    page.get_by_label("Show").select_option(value="without_mfa")
    apply(portal)
    expect(summary).to_contain_text("7 users · page 1 of 1")
    expect_sorted(page, "Name", "descending")
    expect(names(page)).to_have_text([f"Member {number}" for number in range(19, 12, -1)])
    expect(search).to_have_value("Member 1")
    portal.check()
