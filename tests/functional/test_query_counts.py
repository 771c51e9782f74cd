"""How many SQL statements a request costs, so an N+1 query shows up as a failing test.

The practice review, its CSV and the practice's security events must cost the same number of
statements for a practice of 10 users as for one of 1,000. Log In, the code step and the
Security tab must stay at small, fixed numbers.

Statements are counted with a `before_cursor_execute` listener on the engine of the app under
test (`client.application`), not the twin app whose context the test body runs in.
"""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import event, insert, select

from portal import audit
from portal.accounts.passwords import hash_password
from portal.clock import now as utcnow
from portal.extensions import db
from portal.models import MfaEnrollment, User
from tests.factories import PASSWORD, make_enrollment, make_practice, make_user
from tests.functional.mfa_helpers import confirm_password

HTMX_TABLE = {"HX-Request": "true", "HX-Target": "user-table"}

# (label, path, headers) of every practice-review request whose cost must not grow with the practice.
REVIEW_REQUESTS = [
    ("review page", "/practice/", {}),
    ("review page, filtered, sorted, page 3", "/practice/?filter=without_mfa&sort=method&dir=desc&page=3&q=member", {}),
    ("review table fragment (HTMX)", "/practice/?sort=last_mfa&dir=desc&page=2", HTMX_TABLE),
    ("CSV download", "/practice/users.csv", {}),
    ("CSV download, filtered", "/practice/users.csv?filter=with_mfa&sort=enrolled&dir=desc", {}),
    ("security events", "/practice/audit", {}),
    ("one member", "/practice/users/{member_id}", {}),
]


class StatementCounter:
    """Records the SQL statements the server app sends while `run()` performs a request."""

    def __init__(self, app):
        with app.app_context():
            self.engine = db.engine
        self.recording = False
        self.seen: list[str] = []
        event.listen(self.engine, "before_cursor_execute", self._before_cursor_execute)

    def _before_cursor_execute(self, conn, cursor, statement, parameters, context, executemany):
        if self.recording:
            self.seen.append(statement)

    def run(self, request) -> tuple[object, list[str]]:
        """Perform `request()` (the whole body read, so streamed responses count in full)."""
        self.seen = []
        self.recording = True
        try:
            response = request()
            response.get_data()
        finally:
            self.recording = False
        return response, list(self.seen)

    def close(self):
        event.remove(self.engine, "before_cursor_execute", self._before_cursor_execute)


@pytest.fixture
def statements(client):
    # Flask-Session deletes expired sessions on a random 1 in 200 requests; that would make
    # counts flaky, so the app under test runs without it (the CLI cleanup is unaffected).
    client.application.session_interface.cleanup_n_requests = 0
    counter = StatementCounter(client.application)
    yield counter
    counter.close()


def dialect() -> str:
    return db.engine.dialect.name


def add_members(practice, first: int, last: int, *, password_hash: str):
    """Bulk-add clinicians member<first>..member<last>, every third with Email as MFA."""
    now = utcnow()
    db.session.execute(insert(User), [
        dict(email=f"member{i:04d}@oak.test", display_name=f"Member {i:04d}", role="clinician",
             practice_id=practice.id, password_hash=password_hash, active=i % 17 != 0, email_verified_at=now,
             last_mfa_at=now - timedelta(minutes=i) if i % 2 else None)
        for i in range(first, last + 1)
    ])
    ids = db.session.scalars(
        select(User.id).where(User.practice_id == practice.id, User.email.like("member%")).order_by(User.id)
    ).all()
    enrolled = set(db.session.scalars(select(MfaEnrollment.user_id)).all())
    db.session.execute(insert(MfaEnrollment), [
        dict(user_id=user_id, method="email", enrolled_at=now - timedelta(hours=user_id))
        for user_id in ids[::3] if user_id not in enrolled
    ] or [dict(user_id=ids[0], method="email", enrolled_at=now)])
    db.session.commit()


def add_events(admin, subject, count: int):
    for _ in range(count):
        audit.record("mfa.code_sent", actor=admin, subject=subject, detail={"channel": "email"})
    db.session.commit()


def review_statements(client, statements, member_id) -> dict[str, list[str]]:
    seen_by_label = {}
    for label, path, headers in REVIEW_REQUESTS:
        response, seen = statements.run(
            lambda path=path, headers=headers: client.get(path.format(member_id=member_id), headers=headers))
        assert response.status_code == 200, (label, response.status_code)
        seen_by_label[label] = seen
    return seen_by_label


# What the review requests cost today, on SQLite and PostgreSQL alike, with database sessions
# (Redis sessions cost one less). Every request pays 2: the session load and the user with their
# MFA method and practice (one joined query, which the enrollment gate uses too); an unchanged
# session is not written. On top: the review page 4 (the practice's kept counts, for coverage and
# the table's size; the table page; open request; latest request), and 1 more with a search (its
# matches counted up to the limit); the CSV 1 (all rows, streamed); the security events 1 (one
# page, actor/subject/practice joined in); a member 1.
REVIEW_LIMITS = {
    "review page": 6,
    "review page, filtered, sorted, page 3": 7,
    "review table fragment (HTMX)": 6,
    "CSV download": 3,
    "CSV download, filtered": 3,
    "security events": 3,
    "one member": 3,
}


def test_review_costs_the_same_for_10_and_1000_users(client, auth, statements):
    """Does the review (page, fragment, CSV, events, member) cost as many statements for 1,000 users as for 10?"""
    password_hash = hash_password(PASSWORD)
    practice = make_practice("Oak Clinic")
    admin = make_user("admin@oak.test", role="practice_admin", practice=practice, display_name="Ada Admin")
    add_members(practice, 1, 9, password_hash=password_hash)
    member = db.session.scalar(select(User).where(User.email == "member0001@oak.test"))
    add_events(admin, member, 5)
    assert auth.login("admin@oak.test", PASSWORD).status_code == 303
    small = review_statements(client, statements, member.id)

    add_members(practice, 10, 999, password_hash=password_hash)
    add_events(admin, member, 300)
    html = client.get("/practice/").get_data(as_text=True)
    assert "1000 users · page 1 of 40" in html
    large = review_statements(client, statements, member.id)

    for label, limit in REVIEW_LIMITS.items():
        assert len(large[label]) == len(small[label]), (label, small[label], large[label])
        assert len(small[label]) <= limit, (label, small[label])


# What the Log In steps cost today, with database sessions (the same on both databases; Redis
# sessions take the session's own statements away):
# - Password only (3): the user with their method and practice; the audit events "password
#   succeeded" and "login succeeded" (one INSERT as the transaction commits); the new session.
# - Code step, TOTP (5): session; user with method; the code's time step claimed (replay
#   guard), the count reset and the last MFA Log In in one conditional UPDATE of the user
#   (refused while a lock runs); audit "code verified" and "login succeeded" (one INSERT); the
#   session renamed to its new id (one UPDATE).
# - Dashboard (2): session; user with method and practice.
# - Security tab (3): session; user with method and practice; any method being set up.
LOGIN_LIMITS = {
    "password only": {"sqlite": 3, "postgresql": 3},
    "code step (TOTP)": {"sqlite": 5, "postgresql": 5},
    "dashboard after Log In": {"sqlite": 2, "postgresql": 2},
    "security tab after password confirmation": {"sqlite": 3, "postgresql": 3},
}


def test_log_in_steps_cost_a_small_fixed_number_of_statements(app, client, auth, statements, clock):
    """Do Log In, the code step, the dashboard and the Security tab each stay at a small, fixed
    number of statements?"""
    practice = make_practice("Oak Clinic")
    make_user("plain@oak.test", practice=practice, display_name="Pat Plain")
    totp_user = make_user("app@oak.test", practice=practice, display_name="Tia Totp")
    secret = make_enrollment(totp_user, "totp")
    costs = {}

    response, seen = statements.run(lambda: auth.login("plain@oak.test", PASSWORD))
    assert response.status_code == 303 and response.headers["Location"] == "/"
    costs["password only"] = len(seen)
    auth.logout()

    assert auth.login("app@oak.test", PASSWORD).headers["Location"] == "/login/code"
    code = pyotp.TOTP(secret).at(clock.now())
    response, seen = statements.run(lambda: auth.enter_code(code))
    assert response.status_code == 303 and response.headers["Location"] == "/"
    costs["code step (TOTP)"] = len(seen)
    response, seen = statements.run(lambda: client.get("/"))
    assert response.status_code == 200 and "Welcome, Tia Totp." in response.get_data(as_text=True)
    costs["dashboard after Log In"] = len(seen)

    assert confirm_password(client, PASSWORD).status_code in (200, 303)
    response, seen = statements.run(lambda: client.get("/account/security"))
    assert response.status_code == 200 and "Authenticator Apps" in response.get_data(as_text=True)
    costs["security tab after password confirmation"] = len(seen)

    for label, limits in LOGIN_LIMITS.items():
        assert costs[label] <= limits[dialect()], (label, costs[label])
