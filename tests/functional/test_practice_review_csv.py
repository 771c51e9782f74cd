"""The practice admin's MFA enforcement review: the CSV download.

Every test logs in through the Log In form and reads pages the way the admin would see them.
Helpers are in practice_review_helpers.py, the shared fixtures in conftest.py.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import User
from tests.factories import make_practice, make_user
from tests.functional.practice_review_helpers import CSV_URL, add_members, all_table_rows, csv_rows, login_admin

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
        # The same moment: the CSV's heading names the zone ("Last MFA login (UTC)"), the page's cells do.
        assert [f"{row[7]} UTC" if row[7] else "—" for row in rows] == [row[5] for row in table], query


def test_csv_download_is_an_attachment_streamed(client, mixed_members):
    """Is the CSV offered as a file download, sent as a stream rather than built in memory?"""
    response = client.get(CSV_URL)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    from portal import clock

    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="fir-health-mfa-users-{clock.now():%Y-%m-%d}.csv"')
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
