"""Shared by the practice review tests (test_practice_review_*.py): reading pages as a person
would, and building practices. Their fixtures (Alder Clinic, its admin, and Birch Surgery, whose
people must never show up for Alder's admin) are in tests/functional/conftest.py.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from html.parser import HTMLParser

from sqlalchemy import insert, select

from portal.accounts.passwords import hash_password
from portal.clock import now as utcnow
from portal.extensions import db
from portal.models import MfaEnrollment, User
from tests.factories import PASSWORD, make_user

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


ALDER_EMAILS = {"admin@alder.test", "ben@alder.test", "cara@alder.test", "dan@alder.test", "eve@alder.test",
                "finn@alder.test", "gus@alder.test"}
BIRCH_NAMES_AND_EMAILS = ("bob@birch.test", "bella@birch.test", "birch-admin@birch.test", "Bob Birch", "Bella Bay",
                          "Bart Boss", "Birch Surgery")
