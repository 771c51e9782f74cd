"""The practice admin's MFA enforcement review: requirement, coverage, users table, CSV,
requests to support, the practice's security events, and what an admin must not reach.

Every test logs in through the Log In form and reads pages the way the admin would see them.
Most build a second practice whose people must never show up for the first practice's admin.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from sqlalchemy import func, insert, select

from portal import audit
from portal.accounts.passwords import hash_password
from portal.enforcement import requirement
from portal.extensions import db
from portal.models import AuditEvent, MfaEnrollment, Practice, RequirementRequest, User
from portal.models.base import utcnow
from tests.factories import PASSWORD, make_enrollment, make_practice, make_user

HTMX_TABLE = {"HX-Request": "true", "HX-Target": "user-table"}
REVIEW = "/practice/"
CSV_URL = "/practice/users.csv"


# --- reading pages as a person would ---------------------------------------------------------

class _UserTableReader(HTMLParser):
    """Collect the text of every body row of the users table, one list of cells per row."""

    def __init__(self):
        super().__init__()
        self.rows: list[list[str]] = []
        self._in_body = False
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tbody":
            self._in_body = True
        elif self._in_body and tag == "tr":
            self._row = []
        elif self._row is not None and tag == "td":
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def table_rows(html: str) -> list[list[str]]:
    """Rows of the users table as [name, email, role, MFA, enrolled, last MFA]; none if empty."""
    start = html.index('<div id="user-table"')
    reader = _UserTableReader()
    reader.feed(html[start:])
    return [row for row in reader.rows if len(row) == 6]


def table_emails(html: str) -> list[str]:
    return [row[1] for row in table_rows(html)]


def text_of(html: str, element_id: str) -> str:
    """The visible text of the element with this id (tags dropped, whitespace collapsed)."""
    match = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>(.*?)</\1>', html, re.S)
    assert match, f"no #{element_id} on the page"
    return " ".join(re.sub(r"<[^>]+>", "", match.group(2)).split())


def page_position(html: str) -> tuple[int, int, int]:
    """(users matching, this page, pages) from the summary above the table."""
    match = re.search(r"(\d+) users? · page (\d+) of (\d+)", text_of(html, "table-summary"))
    assert match, text_of(html, "table-summary")
    return tuple(int(n) for n in match.groups())


def link_href(html: str, rel: str) -> str:
    match = re.search(rf'<a rel="{rel}" href="([^"]+)"', html)
    assert match, f"no {rel} link"
    return match.group(1).replace("&amp;", "&")


def csv_rows(response) -> list[list[str]]:
    """Body rows of a CSV download (the header row checked and dropped)."""
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0][:2] == ["Name", "Email"], rows[0]
    return rows[1:]


def all_table_rows(client, query: dict) -> tuple[list[list[str]], str]:
    """Every row of the table for `query`, page after page, as a person paging through would,
    and the address of the "Download CSV" link shown with the table."""
    html = client.get(REVIEW, query_string=query).get_data(as_text=True)
    rows = table_rows(html)
    _, _, pages = page_position(html)
    for number in range(2, pages + 1):
        page = client.get(REVIEW, query_string={**query, "page": number}).get_data(as_text=True)
        rows += table_rows(page)
    download = re.search(r'<a href="([^"]+)"[^>]*>Download CSV</a>', page if pages > 1 else html)
    return rows, download.group(1).replace("&amp;", "&")


# --- building practices -------------------------------------------------------------------------

def login_admin(auth, practice, email="admin@alder.test", name="Ada Admin"):
    admin = make_user(email, role="practice_admin", practice=practice, display_name=name)
    response = auth.login(email, PASSWORD)
    assert response.status_code == 303 and "/login" not in response.headers["Location"]
    return admin


def add_members(practice, count: int, *, prefix="member", name="Member", methods=(), last_mfa=()):
    """Bulk-add `count` clinicians named "<name> 01".. with emails <prefix>01@...

    `methods[i]` ("email" / "sms" / None) and `last_mfa[i]` (minutes ago / None) apply to the
    i-th member where given.
    """
    password_hash = hash_password(PASSWORD)
    now = utcnow()
    domain = practice.name.split()[0].lower() + ".test"
    minutes_ago = list(last_mfa[:count]) + [None] * (count - len(last_mfa[:count]))
    db.session.execute(insert(User), [
        dict(email=f"{prefix}{i:02d}@{domain}", display_name=f"{name} {i:02d}", role="clinician",
             practice_id=practice.id, password_hash=password_hash, active=True, email_verified_at=now,
             last_mfa_at=None if minutes_ago[i - 1] is None else now - timedelta(minutes=minutes_ago[i - 1]))
        for i in range(1, count + 1)
    ])
    ids = dict(db.session.execute(
        select(User.email, User.id).where(User.practice_id == practice.id, User.email.like(f"{prefix}%"))
    ).all())
    enrollments = []
    for i, method in enumerate(methods[:count], start=1):
        if method:
            enrollments.append(dict(user_id=ids[f"{prefix}{i:02d}@{domain}"], method=method,
                                    phone_e164="+12025550143" if method == "sms" else None,
                                    enrolled_at=now - timedelta(days=i // 3)))
    if enrollments:
        db.session.execute(insert(MfaEnrollment), enrollments)
    db.session.commit()


@pytest.fixture
def other_practice():
    """Birch Surgery, whose people must never be seen by Alder Clinic's admin."""
    birch = make_practice("Birch Surgery")
    bob = make_user("bob@birch.test", practice=birch, display_name="Bob Birch")
    make_enrollment(bob, "totp")
    make_user("bella@birch.test", practice=birch, display_name="Bella Bay")
    make_user("birch-admin@birch.test", role="practice_admin", practice=birch, display_name="Bart Boss")
    return birch


@pytest.fixture
def alder(other_practice):
    """Alder Clinic's people other than its admin (whom `alder_admin` adds and logs in).

    With the admin, seven users: active are Ada Admin (no MFA), Ben and Cara (Authenticator
    Apps), Dan (SMS), Eve (Email) and Finn (no MFA); Gus is inactive and still has SMS set up.
    """
    practice = make_practice("Alder Clinic")
    for email, name, method in [
        ("ben@alder.test", "Ben Totp", "totp"),
        ("cara@alder.test", "Cara Totp", "totp"),
        ("dan@alder.test", "Dan Sms", "sms"),
        ("eve@alder.test", "Eve Email", "email"),
        ("finn@alder.test", "Finn None", None),
    ]:
        user = make_user(email, practice=practice, display_name=name)
        if method:
            make_enrollment(user, method)
    gus = make_user("gus@alder.test", practice=practice, display_name="Gus Gone", active=False)
    make_enrollment(gus, "sms")
    return practice


@pytest.fixture
def alder_admin(alder, auth):
    return login_admin(auth, alder)


ALDER_EMAILS = {"admin@alder.test", "ben@alder.test", "cara@alder.test", "dan@alder.test", "eve@alder.test",
                "finn@alder.test", "gus@alder.test"}
BIRCH_NAMES_AND_EMAILS = ("bob@birch.test", "bella@birch.test", "birch-admin@birch.test", "Bob Birch", "Bella Bay",
                          "Bart Boss", "Birch Surgery")


# --- who may open the review --------------------------------------------------------------------

@pytest.mark.parametrize("role", ["clinician", "staff"])
def test_clinicians_and_staff_get_403_everywhere_in_the_review(client, auth, alder, role):
    """Can a clinician or staff member read the review, the CSV, a member, the events, or file a request?"""
    user = make_user(f"{role}@alder.test", role=role, practice=alder)
    auth.login(f"{role}@alder.test", PASSWORD)
    for path in (REVIEW, CSV_URL, f"/practice/users/{user.id}", "/practice/audit"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert "ben@alder.test" not in response.get_data(as_text=True)
    assert client.post("/practice/requests", data={"note": "please"}).status_code == 403
    assert db.session.scalar(select(func.count(RequirementRequest.id))) == 0


def test_logged_out_visitor_is_sent_to_log_in(client, alder):
    """Does a visitor who is not logged in get Log In instead of the table or the CSV?"""
    page = client.get(REVIEW)
    assert page.status_code == 303 and "/login" in page.headers["Location"]
    download = client.get(CSV_URL)
    assert download.status_code == 303 and "ben@alder.test" not in download.get_data(as_text=True)
    fragment = client.get(REVIEW, headers=HTMX_TABLE)
    assert fragment.status_code == 401 and "/login" in fragment.headers["HX-Redirect"]
    assert fragment.get_data(as_text=True) == ""


# --- requirement and coverage -------------------------------------------------------------------

def test_coverage_counts_active_users_split_by_method(client, alder_admin):
    """With 2 app, 1 SMS, 1 Email users, 2 without MFA and 1 inactive: are the numbers right?"""
    html = client.get(REVIEW).get_data(as_text=True)
    assert "MFA is not required for every user" in text_of(html, "requirement-state")
    coverage = text_of(html, "coverage")
    assert "4 of 6 users have MFA (67%)" in coverage
    assert "Authenticator Apps: 2 · SMS: 1 · Email: 1." in coverage
    assert "If MFA were required today, 2 users would have to enroll at next Log In." in text_of(html, "would-enroll")
    see_who = re.search(r'<p id="would-enroll">.*?<a href="([^"]+)">See who</a>', html, re.S).group(1)
    listed = table_emails(client.get(see_who.replace("&amp;", "&")).get_data(as_text=True))
    assert sorted(listed) == ["admin@alder.test", "finn@alder.test"]


def test_the_requirement_is_shown_read_only(client, alder_admin):
    """Is there anything on the review page that switches the requirement directly?"""
    html = client.get(REVIEW).get_data(as_text=True)
    forms = re.findall(r'<form method="post" action="([^"]+)"', html)
    assert set(forms) == {"/practice/requests", "/logout"}
    assert 'name="mfa_required"' not in html and 'name="required"' not in html


def test_a_practice_with_no_other_users_reads_sensibly(client, auth):
    """Does an admin alone in a new practice see 0 of 1 and one user who would enroll?"""
    login_admin(auth, make_practice("Solo Clinic"), email="solo@solo.test", name="Sol Solo")
    html = client.get(REVIEW).get_data(as_text=True)
    assert "0 of 1 users have MFA (0%)" in text_of(html, "coverage")
    assert "1 user would have to enroll" in text_of(html, "would-enroll")
    assert table_emails(html) == ["solo@solo.test"]


def test_a_required_practice_shows_required_and_no_would_enroll(client, auth, other_practice):
    """When MFA is already required, does the page say so and drop the 'if it were required' line?"""
    practice = make_practice("Cedar Care", mfa_required=True)
    admin = make_user("admin@cedar.test", role="practice_admin", practice=practice, display_name="Cy Cedar")
    secret = make_enrollment(admin, "totp")
    make_user("nomfa@cedar.test", practice=practice, display_name="Nia Nomfa")
    assert auth.login_totp("admin@cedar.test", PASSWORD, secret).status_code == 303
    html = client.get(REVIEW).get_data(as_text=True)
    assert "MFA is required for every user" in text_of(html, "requirement-state")
    assert 'id="would-enroll"' not in html
    assert "1 of 2 users have MFA (50%)" in text_of(html, "coverage")
    assert "Ask support to stop requiring MFA" in html


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


def test_huge_page_numbers_and_long_searches_do_not_break_the_page(client, sixty_users):
    """Does a page number too big for any integer column, or a 5,000-character search, still answer 200?"""
    huge = client.get(REVIEW, query_string={"page": "9" * 30})
    assert huge.status_code == 200 and page_position(huge.get_data(as_text=True)) == (60, 3, 3)
    long_search = client.get(REVIEW, query_string={"q": "x" * 5000}, headers=HTMX_TABLE)
    assert long_search.status_code == 200 and page_position(long_search.get_data(as_text=True))[0] == 0
    assert client.get(CSV_URL, query_string={"q": "x" * 5000, "page": "9" * 30}).status_code == 200


# --- one practice never sees another ------------------------------------------------------------

def test_other_practices_member_is_404(client, alder_admin, other_practice):
    """Does the admin get 404, with nothing about the person, for another practice's (or support's) user id?"""
    bob = db.session.scalar(select(User).where(User.email == "bob@birch.test"))
    response = client.get(f"/practice/users/{bob.id}")
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert "bob@birch.test" not in body and "Bob Birch" not in body
    missing = client.get("/practice/users/987654")
    assert missing.status_code == 404
    assert _without_request_ids(missing.get_data(as_text=True)) == _without_request_ids(body)


    support = make_user("helper@portal.test", role="support", display_name="Hal Helper")
    assert client.get(f"/practice/users/{support.id}").status_code == 404


def test_an_absurdly_large_user_id_is_404_not_a_server_error(client, alder_admin):
    """Does probing /practice/users/<id> with ids beyond any database integer get 404, not a 500?"""
    for huge in (2**31, 2**63, 10**30):
        assert client.get(f"/practice/users/{huge}").status_code == 404, huge


def _without_request_ids(html: str) -> str:
    return re.sub(r"[0-9a-f]{16}", "", html)


def test_own_member_page_shows_their_mfa_state(client, alder_admin):
    """Does a member's page show their email, role and method?"""
    dan = db.session.scalar(select(User).where(User.email == "dan@alder.test"))
    response = client.get(f"/practice/users/{dan.id}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "dan@alder.test" in html and "Clinician" in html and "<dd>SMS</dd>" in html
    assert "+12025550143" not in html


LEAK_PROBES = [
    {}, {"filter": "with_mfa"}, {"filter": "without_mfa"}, {"q": "bob@birch.test"}, {"q": "birch"},
    {"q": "Bella"}, {"sort": "email", "dir": "desc"}, {"sort": "method"}, {"sort": "last_mfa", "dir": "desc"},
    {"page": "2"}, {"q": "%"},
]


def test_other_practices_users_never_appear_in_table_or_csv(client, alder_admin, other_practice):
    """Whatever the filter, search or sort, does the table or CSV ever show another practice's people?"""
    for query in LEAK_PROBES:
        html = client.get(REVIEW, query_string=query).get_data(as_text=True)
        fragment = client.get(REVIEW, query_string=query, headers=HTMX_TABLE).get_data(as_text=True)
        download = client.get(CSV_URL, query_string=query).get_data(as_text=True)
        # A search term is echoed back in the search box and links, so then only look at what was found.
        bodies = [download] + ([html, fragment] if "q" not in query else [])
        shown = [cell for body in (html, fragment) for row in table_rows(body) for cell in row]
        for leaked in BIRCH_NAMES_AND_EMAILS:
            assert not any(leaked in body for body in bodies), (query, leaked)
            assert not any(leaked in cell for cell in shown), (query, leaked)
        assert set(table_emails(html)) <= ALDER_EMAILS, query


def test_searching_another_practices_email_finds_nobody(client, alder_admin, other_practice):
    """Can the admin learn that bob@birch.test exists by searching for him?"""
    html = client.get(REVIEW, query_string={"q": "bob@birch.test"}).get_data(as_text=True)
    assert page_position(html) == (0, 1, 1)
    assert "No users match." in html
    assert csv_rows(client.get(CSV_URL, query_string={"q": "bob@birch.test"})) == []


# --- CSV ------------------------------------------------------------------------------------------

@pytest.fixture
def mixed_members(auth):
    """Fir Health: admin and 34 members with a mix of methods, shared names and ties in dates."""
    practice = make_practice("Fir Health")
    methods = ["email", "sms", None] * 12
    last_mfa = [None, 30, 30, 5, None, 600] * 6
    add_members(practice, 34, methods=methods, last_mfa=last_mfa)
    for email in ("member03@fir.test", "member04@fir.test", "member05@fir.test"):
        db.session.scalar(select(User).where(User.email == email)).display_name = "Sam Same"
    db.session.commit()
    login_admin(auth, practice, email="admin@fir.test")
    return practice


TABLE_QUERIES = [
    {},
    {"sort": "name", "dir": "desc"},
    {"sort": "email", "dir": "desc"},
    {"sort": "method"},
    {"sort": "method", "dir": "desc"},
    {"sort": "enrolled", "dir": "desc"},
    {"sort": "last_mfa"},
    {"filter": "without_mfa", "sort": "email"},
    {"filter": "with_mfa", "sort": "last_mfa", "dir": "desc"},
    {"q": "member 1"},
    {"q": "same", "dir": "desc"},
]


def test_csv_rows_match_the_table_rows(client, mixed_members):
    """For the same filter, search and order, does the CSV hold the table's rows in the table's order?"""
    for query in TABLE_QUERIES:
        table, download_link = all_table_rows(client, query)
        assert download_link.startswith(CSV_URL), download_link
        rows = csv_rows(client.get(download_link))
        assert rows, query
        assert [(row[1], row[0]) for row in rows] == [(row[1], row[0]) for row in table], query
        assert [row[5] or "No MFA" for row in rows] == [row[3] for row in table], query
        assert [row[7] or "—" for row in rows] == [row[5] for row in table], query


def test_csv_download_is_an_attachment_streamed(client, mixed_members):
    """Is the CSV offered as a file download, sent as a stream rather than built in memory?"""
    response = client.get(CSV_URL)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="practice-mfa-users.csv"'
    assert response.is_streamed
    assert len(csv_rows(response)) == 35


def test_csv_neutralises_spreadsheet_formulas(client, alder, auth):
    """Does a name or email that starts like a formula reach the spreadsheet as plain text?"""
    evil = {
        "=HYPERLINK(\"http://evil.test\",\"Click\")": "eq@alder.test",
        "+1+2": "plus@alder.test",
        "-2+3": "minus@alder.test",
        "@SUM(1,1)": "at@alder.test",
    }
    for name, email in evil.items():
        make_user(email, practice=alder, display_name=name)
    make_user("=cmd|'/c calc'!a1@alder.test", practice=alder, display_name="Formula Email")
    login_admin(auth, alder)
    rows = {row[1]: row for row in csv_rows(client.get(CSV_URL))}
    for name, email in evil.items():
        assert rows[email][0] == "'" + name
    assert "'=cmd|'/c calc'!a1@alder.test" in rows
    assert rows["ben@alder.test"][0] == "Ben Totp"
    assert not any(cell[:1] in "=+-@" for row in rows.values() for cell in row if cell)


# --- asking support to change the requirement ---------------------------------------------------

def test_request_to_require_mfa_is_sent_and_shown(client, alder_admin, clock):
    """After asking support to require MFA, does the page say the request is waiting?"""
    response = client.post("/practice/requests", data={"note": "We had a phishing scare."})
    assert response.status_code == 303 and response.headers["Location"].endswith("/practice/")
    html = client.get(REVIEW).get_data(as_text=True)
    assert "Your request was sent to support" in html
    state = text_of(html, "request-state")
    assert "Your request to require MFA" in state and "is waiting for support" in state
    assert clock.now().strftime("%Y-%m-%d %H:%M") in state
    assert 'action="/practice/requests"' not in html
    request = db.session.scalar(select(RequirementRequest))
    assert (request.status, request.require, request.note) == ("pending", True, "We had a phishing scare.")
    assert request.requested_by_id == alder_admin.id
    assert db.session.get(Practice, alder_admin.practice_id).mfa_required is False


def test_htmx_request_without_a_note_redirects_with_hx_redirect(client, alder_admin):
    """Sent by HTMX with no note (it is optional), does the request get an HX-Redirect to the review?"""
    response = client.post("/practice/requests", data={}, headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == "/practice/"
    assert db.session.scalars(select(RequirementRequest.note)).all() == [""]


def test_second_request_while_one_is_open_is_409(client, alder_admin):
    """A second request while the first is open: is it refused with 409 and a message saying why?"""
    client.post("/practice/requests", data={"note": "first"})
    response = client.post("/practice/requests", data={"note": "second"})
    assert response.status_code == 409
    assert "There is already an open request for this practice" in response.get_data(as_text=True)
    assert db.session.scalars(select(RequirementRequest.note)).all() == ["first"]


def test_a_note_over_1000_characters_is_refused(client, alder_admin):
    """Is an overlong note refused with 400 and nothing recorded?"""
    response = client.post("/practice/requests", data={"note": "x" * 1001})
    assert response.status_code == 400
    assert db.session.scalar(select(func.count(RequirementRequest.id))) == 0


@pytest.fixture
def support_user():
    return make_user("support@portal.test", role="support", display_name="Sue Support")


@pytest.fixture
def alder_admin_with_mfa(alder, auth, clock):
    """Alder's admin with an authenticator app, so the requirement, once on, does not lock them out."""
    admin = make_user("admin@alder.test", role="practice_admin", practice=alder, display_name="Ada Admin")
    secret = make_enrollment(admin, "totp")
    assert auth.login_totp("admin@alder.test", PASSWORD, secret).status_code == 303
    return admin


def test_approved_request_turns_the_requirement_on(client, alder_admin_with_mfa, support_user, outbox, clock):
    """After support approves, does the admin see 'approved', support's note and MFA required?"""
    client.post("/practice/requests", data={"note": "Please require it."})
    request = db.session.scalar(select(RequirementRequest))
    clock.advance(minutes=30)
    requirement.decide(request, actor=support_user, approve=True, note="Done, as asked.", now=clock.now())

    html = client.get(REVIEW).get_data(as_text=True)
    assert "Your last request to require MFA was approved: “Done, as asked.”" in text_of(html, "request-state")
    assert "MFA is required for every user" in text_of(html, "requirement-state")
    assert 'id="would-enroll"' not in html
    assert "Ask support to stop requiring MFA" in html
    db.session.expire_all()
    assert db.session.get(Practice, alder_admin_with_mfa.practice_id).mfa_required is True
    # Finn, the only active user without MFA, is told; nobody at Birch is.
    notified = {message.recipient for message in outbox.messages(channel="email")}
    assert "finn@alder.test" in notified
    assert not any(email.endswith("@birch.test") for email in notified)


def test_declined_request_leaves_the_requirement_off(client, alder_admin_with_mfa, support_user, clock):
    """After support declines, does the admin see 'declined' and the note, and may ask again?"""
    client.post("/practice/requests", data={"note": "Please require it."})
    request = db.session.scalar(select(RequirementRequest))
    requirement.decide(request, actor=support_user, approve=False, note="Talk to your users first.", now=clock.now())

    html = client.get(REVIEW).get_data(as_text=True)
    assert "Your last request to require MFA was declined: “Talk to your users first.”" in text_of(html, "request-state")
    assert "MFA is not required" in text_of(html, "requirement-state")
    assert 'action="/practice/requests"' in html
    assert client.post("/practice/requests", data={"note": "Again, please."}).status_code == 303
    assert db.session.scalar(select(func.count(RequirementRequest.id))) == 2


def test_in_a_required_practice_the_request_is_to_stop_requiring(client, auth, support_user, clock):
    """When MFA is required, is the admin's request one to stop requiring it, and does approval do that?"""
    practice = make_practice("Cedar Care", mfa_required=True)
    admin = make_user("admin@cedar.test", role="practice_admin", practice=practice, display_name="Cy Cedar")
    secret = make_enrollment(admin, "totp")
    auth.login_totp("admin@cedar.test", PASSWORD, secret)
    client.post("/practice/requests", data={"note": "Pilot is over."})
    assert "Your request to stop requiring MFA" in text_of(client.get(REVIEW).get_data(as_text=True), "request-state")
    request = db.session.scalar(select(RequirementRequest))
    assert request.require is False
    requirement.decide(request, actor=support_user, approve=True, note="Turned off.", now=clock.now())
    html = client.get(REVIEW).get_data(as_text=True)
    assert "MFA is not required" in text_of(html, "requirement-state")
    assert "was approved" in text_of(html, "request-state")


# --- the practice's security events -----------------------------------------------------------

def test_audit_shows_only_this_practices_events(client, auth, alder, other_practice):
    """Do the admin's security events include their people's sign-ins and none of another practice's?"""
    auth.login("bella@birch.test", "not the right password")
    auth.login("bella@birch.test", PASSWORD)
    auth.logout()
    auth.login("bob@birch.test", PASSWORD)  # Bob has an app: he stops at the code step
    auth.login("finn@alder.test", PASSWORD)
    auth.logout()
    bob = db.session.scalar(select(User).where(User.email == "bob@birch.test"))
    audit.record("practice.request_made", actor=bob, practice_id=other_practice.id, detail={"request": 0}, commit=True)
    birch_events = db.session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.practice_id == other_practice.id))
    assert birch_events >= 5

    login_admin(auth, alder)
    for query in ({}, {"practice": other_practice.id}, {"user": bob.id}, {"event_type": "practice.request_made"}):
        response = client.get("/practice/audit", query_string=query)
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        for leaked in ("bob@birch.test", "bella@birch.test", "birch-admin@birch.test"):
            assert leaked not in html, query
    html = client.get("/practice/audit").get_data(as_text=True)
    assert "finn@alder.test" in html
    assert "login.succeeded" in html and "logout" in html
    shown = len(re.findall(r'<tr id="event-\d+"', html))
    alder_events = db.session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.practice_id == alder.id))
    assert shown == alder_events


def test_nonsense_audit_filters_answer_200(client, alder_admin):
    """Do made-up or out-of-range filter values on the security events get a page, never a 500?"""
    for query in ({"user": "abc"}, {"user": 2**40}, {"before": 2**61}, {"before": "-1"}, {"from": "2020-13-45"},
                  {"to": "yesterday"}, {"event_type": "evil"}, {"practice": 2**40}):
        assert client.get("/practice/audit", query_string=query).status_code == 200, query


# --- clearing MFA belongs to support alone -------------------------------------------------------

def test_practice_admin_cannot_clear_a_users_mfa(client, alder_admin):
    """Can a practice admin clear a colleague's MFA through the support route or a practice one?"""
    ben = db.session.scalar(select(User).where(User.email == "ben@alder.test"))
    form = {"reason": "Lost phone", "ticket": "T-1"}
    assert client.post(f"/support/users/{ben.id}/clear-mfa", data=form).status_code == 404
    assert client.post(f"/support/users/{ben.id}/clear-mfa", data=form, headers={"HX-Request": "true"}).status_code == 404
    assert client.post(f"/practice/users/{ben.id}/clear-mfa", data=form).status_code in (404, 405)
    assert client.post(f"/practice/users/{ben.id}", data=form).status_code == 405
    db.session.expire_all()
    assert db.session.scalar(select(MfaEnrollment.method).where(MfaEnrollment.user_id == ben.id)) == "totp"
    assert db.session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.event_type == "mfa.cleared")) == 0
    member_page = client.get(f"/practice/users/{ben.id}").get_data(as_text=True)
    assert "clear-mfa" not in member_page
    assert "Only support can clear" in member_page


def test_no_practice_route_changes_a_users_mfa(app):
    """Apart from filing a request and inviting people, does any /practice URL accept a change?"""
    changing = {
        rule.rule for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/practice") and rule.methods & {"POST", "PUT", "PATCH", "DELETE"}
    }
    assert changing == {"/practice/requests", "/practice/invitations"}


def test_control_characters_in_free_text_are_refused(client, alder_admin):
    """A NUL in a note or a name: a clear 400, never a database error."""
    response = client.post("/practice/requests", data={"note": "please\x00now"})
    assert response.status_code == 400
    assert "Remove the control characters" in response.get_data(as_text=True)
    response = client.post("/practice/invitations", data={"email": "nul@alder.test", "display_name": "Ada\x00", "role": "staff"})
    assert response.status_code == 400


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
