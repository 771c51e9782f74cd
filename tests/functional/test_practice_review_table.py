"""The practice admin's MFA enforcement review: the users table (page and HTMX fragment, filter,
search, sort and paging).

Every test logs in through the Log In form and reads pages the way the admin would see them.
Helpers are in practice_review_helpers.py, the shared fixtures in conftest.py.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.clock import now as utcnow
from portal.extensions import db
from portal.models import User
from tests.factories import make_practice, make_user
from tests.functional.practice_review_helpers import (
    ALDER_EMAILS,
    CSV_URL,
    HTMX_TABLE,
    REVIEW,
    add_members,
    csv_rows,
    link_href,
    login_admin,
    page_position,
    table_emails,
    table_rows,
    text_of,
)

# --- page and fragment --------------------------------------------------------------------------

def test_htmx_table_request_gets_only_the_table(client, alder_admin):
    """Does an HTMX request aimed at the table get just the table, and a plain one the whole page?"""
    fragment = client.get(REVIEW, query_string={"sort": "email"}, headers=HTMX_TABLE)
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 200
    assert body.lstrip().startswith('<div id="user-table"')
    assert "<html" not in body and 'id="coverage"' not in body
    assert table_emails(body)[0] == "admin@alder.test"
    assert "HX-Request" in fragment.headers["Vary"]

    page = client.get(REVIEW, query_string={"sort": "email"})
    html = page.get_data(as_text=True)
    assert "<html" in html and 'id="coverage"' in html and '<div id="user-table"' in html
    assert "HX-Request" in page.headers["Vary"]
    assert table_emails(html) == table_emails(body)


def test_boosted_and_history_requests_get_the_full_page(client, alder_admin):
    """Does navigation that replaces the whole page (boost, history restore, other target) get it whole?"""
    for headers in (
        {"HX-Request": "true", "HX-Boosted": "true", "HX-Target": "user-table"},
        {"HX-Request": "true", "HX-History-Restore-Request": "true"},
        {"HX-Request": "true", "HX-Target": "main"},
    ):
        html = client.get(REVIEW, headers=headers).get_data(as_text=True)
        assert "<html" in html and 'id="coverage"' in html, headers


# --- filter, search, sort ------------------------------------------------------------------------

def test_filters_split_users_by_whether_they_have_mfa(client, alder_admin):
    """Do 'With MFA' and 'Without MFA' list the right people, and 'All users' everyone?"""
    with_mfa = table_emails(client.get(REVIEW, query_string={"filter": "with_mfa"}).get_data(as_text=True))
    without = table_emails(client.get(REVIEW, query_string={"filter": "without_mfa"}).get_data(as_text=True))
    everyone = table_emails(client.get(REVIEW, query_string={"filter": "all"}).get_data(as_text=True))
    assert set(with_mfa) == {"ben@alder.test", "cara@alder.test", "dan@alder.test", "eve@alder.test", "gus@alder.test"}
    assert set(without) == {"admin@alder.test", "finn@alder.test"}
    assert set(everyone) == ALDER_EMAILS


def test_table_rows_show_each_users_method_and_inactive_state(client, alder_admin):
    """Does each row show the user's method by its name, and mark the inactive user?"""
    rows = {row[1]: row for row in table_rows(client.get(REVIEW).get_data(as_text=True))}
    assert rows["ben@alder.test"][3] == "Authenticator Apps"
    assert rows["dan@alder.test"][3] == "SMS"
    assert rows["eve@alder.test"][3] == "Email"
    assert rows["finn@alder.test"][3] == "No MFA"
    assert rows["gus@alder.test"][0] == "Gus Gone (inactive)"
    assert rows["admin@alder.test"][2] == "Practice admin"


SEARCHES = {
    "ZIMMER": ["zoe@alder.test"],
    "zoe z": ["zoe@alder.test"],
    "EVE@ALDER": ["eve@alder.test"],
    "  finn  ": ["finn@alder.test"],
    "nobody-here": [],
    # Wildcards are taken literally: % and _ do not match everyone.
    "%": ["percy@alder.test"],
    "_": [],
    "\\": [],
}


def test_search_matches_name_or_email_ignoring_case(client, alder, auth):
    """Does the search box find people by part of their name or email, whatever the case, and
    treat % and _ as the characters they are?"""
    make_user("zoe@alder.test", practice=alder, display_name="Zoe Zimmer")
    make_user("percy@alder.test", practice=alder, display_name="Percy 100% Sure")
    login_admin(auth, alder)
    for q, expected in SEARCHES.items():
        html = client.get(REVIEW, query_string={"q": q}).get_data(as_text=True)
        assert table_emails(html) == expected, q
        if not expected:
            assert "No users match." in html and page_position(html)[0] == 0


def test_sorting_by_name(client, alder, auth):
    """Does name descending put the last name in the alphabet first, and ascending the first?"""
    make_user("zoe@alder.test", practice=alder, display_name="Zoe Zimmer")
    login_admin(auth, alder)
    descending = table_rows(client.get(REVIEW, query_string={"sort": "name", "dir": "desc"}).get_data(as_text=True))
    assert descending[0][0] == "Zoe Zimmer"
    assert descending[-1][0] == "Ada Admin"
    ascending = client.get(REVIEW, query_string={"sort": "name", "dir": "asc"}).get_data(as_text=True)
    assert [row[0] for row in table_rows(ascending)][:3] == ["Ada Admin", "Ben Totp", "Cara Totp"]
    assert 'aria-sort="ascending"' in ascending


def test_sorting_by_email_descending(client, alder_admin):
    """Does email descending list addresses from z to a?"""
    emails = table_emails(client.get(REVIEW, query_string={"sort": "email", "dir": "desc"}).get_data(as_text=True))
    assert emails == sorted(ALDER_EMAILS, reverse=True)


def test_users_without_mfa_sort_last_by_method_either_way(client, alder_admin):
    """Sorting by MFA method in either direction: do the people without MFA stay at the bottom?"""
    for direction in ("asc", "desc"):
        rows = table_rows(client.get(REVIEW, query_string={"sort": "method", "dir": direction}).get_data(as_text=True))
        methods = [row[3] for row in rows]
        assert methods[-2:] == ["No MFA", "No MFA"], direction
        assert "No MFA" not in methods[:-2], direction


def test_sorting_by_last_mfa_login_puts_most_recent_first(client, alder_admin):
    """Does 'Last MFA login' descending start with the most recent sign-in and end with never?"""
    now = utcnow()
    for email, minutes in [("dan@alder.test", 5), ("ben@alder.test", 60), ("eve@alder.test", 600)]:
        db.session.scalar(select(User).where(User.email == email)).last_mfa_at = now - timedelta(minutes=minutes)
    db.session.commit()
    rows = table_rows(client.get(REVIEW, query_string={"sort": "last_mfa", "dir": "desc"}).get_data(as_text=True))
    assert [row[1] for row in rows[:3]] == ["dan@alder.test", "ben@alder.test", "eve@alder.test"]
    assert rows[-1][5] == "—"


# --- paging ---------------------------------------------------------------------------------------

@pytest.fixture
def sixty_users(auth):
    """Elm Practice: its admin (Ada Admin) and 59 members, 60 users in all."""
    practice = make_practice("Elm Practice")
    add_members(practice, 59)
    login_admin(auth, practice, email="admin@elm.test")
    return practice


def test_sixty_users_make_three_pages(client, sixty_users):
    """With 60 users, are there 3 pages of 25, 25 and 10 that together list everyone once?"""
    pages = [client.get(REVIEW, query_string={"page": n}).get_data(as_text=True) for n in (1, 2, 3)]
    assert [page_position(html) for html in pages] == [(60, 1, 3), (60, 2, 3), (60, 3, 3)]
    assert [len(table_rows(html)) for html in pages] == [25, 25, 10]
    emails = [email for html in pages for email in table_emails(html)]
    assert len(set(emails)) == 60
    assert table_emails(pages[0])[:2] == ["admin@elm.test", "member01@elm.test"]
    assert table_emails(pages[2])[-1] == "member59@elm.test"


def test_a_page_beyond_the_end_shows_the_last_page(client, sixty_users):
    """Does asking for page 99 of 3 show page 3 rather than an empty table or an error?"""
    html = client.get(REVIEW, query_string={"page": 99}).get_data(as_text=True)
    assert page_position(html) == (60, 3, 3)
    assert len(table_rows(html)) == 10
    assert 'rel="next"' not in html


def test_pager_and_sort_links_work_without_javascript(client, sixty_users):
    """Following the plain Next, Previous and column links: do they page and sort the table?"""
    first = client.get(REVIEW, query_string={"q": "member"}).get_data(as_text=True)
    assert 'rel="prev"' not in first
    second = client.get(link_href(first, "next"))
    assert second.status_code == 200
    html = second.get_data(as_text=True)
    assert page_position(html) == (59, 2, 3)
    assert table_emails(html)[0] == "member26@elm.test"
    back = client.get(link_href(html, "prev")).get_data(as_text=True)
    assert page_position(back)[1] == 1

    name_link = re.search(r'<a href="([^"]+)"\s+hx-get="[^"]+"[^>]*>Name</a>', html)
    sorted_desc = client.get(name_link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert page_position(sorted_desc) == (59, 1, 3)
    assert table_emails(sorted_desc)[0] == "member59@elm.test"


NONSENSE = [
    {"page": "abc"}, {"page": "-3"}, {"page": "0"}, {"page": "1.5"}, {"sort": "evil"}, {"sort": "password_hash"},
    {"sort": "__class__"}, {"dir": "sideways"}, {"dir": "desc; DROP TABLE users"}, {"filter": "x"}, {"filter": ""},
    {"page": "abc", "sort": "evil", "dir": "sideways", "filter": "x"},
]


def test_nonsense_query_parameters_fall_back_to_defaults(client, sixty_users):
    """Do made-up page, sort, direction and filter values get the default table, never a 500?"""
    default = table_emails(client.get(REVIEW).get_data(as_text=True))
    for query in NONSENSE:
        for headers in ({}, HTMX_TABLE):
            response = client.get(REVIEW, query_string=query, headers=headers)
            assert response.status_code == 200, query
            html = response.get_data(as_text=True)
            assert page_position(html) == (60, 1, 3), query
            assert table_emails(html) == default, query
        download = client.get(CSV_URL, query_string=query)
        assert download.status_code == 200, query
        assert len(csv_rows(download)) == 60, query


SAID = [
    ({"page": "abc"}, "The page must be a whole number from 1, so the first page is shown."),
    ({"page": "-3"}, "The page must be a whole number from 1, so the first page is shown."),
    ({"sort": "password_hash"}, "The table cannot be sorted that way, so it is sorted by name."),
    ({"dir": "sideways"}, "The sort direction was not understood, so the order is ascending."),
    ({"filter": "secret"}, "That filter does not exist, so every user is shown."),
    ({"q": "member\x00"}, "The search holds characters no name or email has, so it was left out."),
    ({"q": "x" * 150}, "The search is longer than 100 characters: its first 100 were used."),
]


@pytest.mark.parametrize(("query", "message"), SAID, ids=lambda value: str(value)[:20])
def test_what_the_table_could_not_use_is_said_on_the_page(client, sixty_users, query, message):
    """A link or bookmark with a value the table cannot use still opens the table, and the page
    (and the HTMX fragment it swaps in) says what was not used, rather than dropping it silently."""
    for headers in ({}, HTMX_TABLE):
        response = client.get(REVIEW, query_string=query, headers=headers)
        assert response.status_code == 200
        assert message in text_of(response.get_data(as_text=True), "table-notes")
    plain = client.get(REVIEW, query_string={"page": "2", "sort": "email", "dir": "desc", "filter": "with_mfa"})
    assert 'id="table-notes"' not in plain.get_data(as_text=True)


def test_huge_page_numbers_and_long_searches_do_not_break_the_page(client, sixty_users):
    """Does a page number too big for any integer column, or a 5,000-character search, still answer 200?"""
    huge = client.get(REVIEW, query_string={"page": "9" * 30})
    assert huge.status_code == 200 and page_position(huge.get_data(as_text=True)) == (60, 3, 3)
    long_search = client.get(REVIEW, query_string={"q": "x" * 5000}, headers=HTMX_TABLE)
    assert long_search.status_code == 200 and page_position(long_search.get_data(as_text=True))[0] == 0
    assert client.get(CSV_URL, query_string={"q": "x" * 5000, "page": "9" * 30}).status_code == 200




# --- a search matching more users than are counted ---------------------------------------------

def test_a_broad_search_says_more_than_and_still_pages_to_the_last_match(client, auth, monkeypatch):
    """When a search matches more users than the table counts (here 10, in production 1,000),
    does it say so, offer Next page after page, and reach every match without repeats?"""
    from portal.enforcement import review

    monkeypatch.setattr(review, "SEARCH_COUNT_LIMIT", 10)
    practice = make_practice("Cedar Practice")
    login_admin(auth, practice, email="admin@cedar.test")
    add_members(practice, 60, prefix="nurse", name="Nurse")
    query = {"q": "nurse"}
    html = client.get(REVIEW, query_string=query).get_data(as_text=True)
    assert text_of(html, "table-summary").startswith("More than 10 users match · page 1")
    seen = table_emails(html)
    while 'rel="next"' in html:
        html = client.get(link_href(html, "next")).get_data(as_text=True)
        seen += table_emails(html)
    assert sorted(seen) == [f"nurse{i:02d}@cedar.test" for i in range(1, 61)]
    assert "More than 10 users match · page 3" in text_of(html, "table-summary")

    narrow = client.get(REVIEW, query_string={"q": "nurse 0"}).get_data(as_text=True)
    assert page_position(narrow) == (9, 1, 1) and 'rel="next"' not in narrow


def test_a_practice_larger_than_the_search_count_shows_its_exact_size_and_last_page(client, auth, monkeypatch):
    """The cap is a search's (it counts matches); the whole practice, or a status filter, is
    counted already (the kept counts). Does a practice with more users than the cap show how
    many, "page N of M", and its last page, read from the end, in order with no gap?"""
    from portal.enforcement import review

    monkeypatch.setattr(review, "SEARCH_COUNT_LIMIT", 10)
    practice = make_practice("Larch Practice")
    login_admin(auth, practice, email="admin@larch.test")
    add_members(practice, 60, prefix="nurse", name="Nurse")
    html = client.get(REVIEW, query_string={"sort": "email"}).get_data(as_text=True)
    assert text_of(html, "table-summary").startswith("61 users · page 1 of 3")
    last = client.get(REVIEW, query_string={"sort": "email", "page": 3}).get_data(as_text=True)
    assert text_of(last, "table-summary").startswith("61 users · page 3 of 3") and 'rel="next"' not in last
    middle = client.get(REVIEW, query_string={"sort": "email", "page": 2}).get_data(as_text=True)
    assert table_emails(html) + table_emails(middle) + table_emails(last) == sorted(
        ["admin@larch.test"] + [f"nurse{i:02d}@larch.test" for i in range(1, 61)])
