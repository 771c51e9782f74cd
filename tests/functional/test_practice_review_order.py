"""The review table's order, every sort and filter, and its shape at a large practice's size.

The method and its enrolment date are copies on the user that database triggers keep (migration
0016), so the table can read any sort from an index. These tests check what the admin sees
against the people as they are (after enrolments, switches, clears and moves), page by page;
on PostgreSQL, that each sort's page comes from an index instead of sorting the practice.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import event, insert, select, text

from portal.accounts.passwords import hash_password
from portal.clock import now as utcnow
from portal.enforcement import review
from portal.extensions import db
from portal.mfa import methods
from portal.models import MfaEnrollment, User
from portal.wording import format_time
from tests.factories import PASSWORD, make_practice
from tests.functional.practice_review_helpers import REVIEW, all_table_rows, login_admin, table_rows

SORTS = ("name", "email", "method", "enrolled", "last_mfa")
LABEL_PLACE = {method.key: place for place, method in
               enumerate(sorted(methods.ALL, key=lambda method: method.label.casefold()))}


def _enroll(user_id: int, method: str, enrolled_at) -> MfaEnrollment:
    enrollment = MfaEnrollment(user_id=user_id, method=method, enrolled_at=enrolled_at,
                               phone_e164="+12025550143" if method == "sms" else None,
                               totp_secret="not-a-real-token" if method == "totp" else None)
    db.session.add(enrollment)
    return enrollment


def _random_practice(seed: int, count: int = 37):
    """A practice with people of every kind: each method, none, equal names in other case, equal
    dates (ties broken by the id), never signed in with MFA, inactive."""
    rng = random.Random(seed)
    practice = make_practice(f"Order Clinic {seed}")
    now = utcnow()
    password_hash = hash_password(PASSWORD)
    names = ["Ada", "ada", "Ben", "cara", "Dan", "de Vries", "Eve", "eve", "Zoe"]
    db.session.execute(insert(User), [
        dict(email=f"p{i:02d}@order{seed}.test", display_name=f"{rng.choice(names)} {rng.choice('ABab')}",
             role="clinician", practice_id=practice.id, password_hash=password_hash, active=rng.random() > 0.15,
             last_mfa_at=rng.choice([None, now - timedelta(hours=rng.choice([1, 2, 3, 50]))]))
        for i in range(count)
    ])
    ids = db.session.scalars(select(User.id).where(User.practice_id == practice.id)).all()
    for user_id in ids:
        method = rng.choice([None, "totp", "sms", "email"])
        if method:
            _enroll(user_id, method, now - timedelta(days=rng.choice([1, 2, 2, 7])))
    db.session.commit()
    return practice, rng


def _expected(practice_id: int, sort: str, direction: str, filter_: str) -> list[str]:
    """The table's emails in the order the admin should see them, worked out in Python from the
    users and their enrollments as stored (not from the copies)."""
    rows = db.session.execute(
        select(User, MfaEnrollment).outerjoin(MfaEnrollment, MfaEnrollment.user_id == User.id)
        .where(User.practice_id == practice_id)).all()
    if filter_ == "with_mfa":
        rows = [(user, enrollment) for user, enrollment in rows if enrollment]
    elif filter_ == "without_mfa":
        rows = [(user, enrollment) for user, enrollment in rows if not enrollment and user.active]
    key = {
        "name": lambda user, enrollment: user.display_name.lower(),
        "email": lambda user, enrollment: user.email,
        "method": lambda user, enrollment: LABEL_PLACE[enrollment.method] if enrollment else None,
        "enrolled": lambda user, enrollment: enrollment.enrolled_at if enrollment else None,
        "last_mfa": lambda user, enrollment: user.last_mfa_at,
    }[sort]
    valued = [(key(*row), row[0].id, row[0].email) for row in rows]
    present = sorted((entry for entry in valued if entry[0] is not None), reverse=direction == "desc")
    missing = sorted((entry for entry in valued if entry[0] is None), reverse=direction == "desc")
    return [email for _value, _id, email in present + missing]  # nobody's empty value ever first


def _assert_every_order(client, practice_id: int) -> None:
    for sort in SORTS:
        for direction in ("asc", "desc"):
            for filter_ in review.FILTERS:
                query = {"sort": sort, "dir": direction, "filter": filter_}
                rows, _download = all_table_rows(client, query)
                emails = [row[1] for row in rows if row[1] != "admin@order.test"]
                expected = [email for email in _expected(practice_id, sort, direction, filter_)
                            if email != "admin@order.test"]
                assert emails == expected, query


@pytest.mark.parametrize("seed", [1, 2])
def test_every_sort_and_filter_lists_people_in_the_order_shown_page_after_page(client, auth, seed):
    """Each column either way, under each filter, page after page: is every person listed once,
    in the order of what the column shows (names case-insensitively, methods by their names,
    ties by who was added first, or last when descending), empty values last both ways? And
    still after people enroll, switch method, have MFA cleared and move to another practice?"""
    practice, rng = _random_practice(seed)
    login_admin(auth, practice, email="admin@order.test")
    _assert_every_order(client, practice.id)

    now = utcnow()
    users = db.session.scalars(select(User).where(User.practice_id == practice.id, User.email != "admin@order.test")
                               .order_by(User.id)).all()
    enrollments = {e.user_id: e for e in db.session.scalars(select(MfaEnrollment))}
    elsewhere = make_practice(f"Elsewhere {seed}")
    for user in rng.sample(users, 12):
        enrollment = enrollments.get(user.id)
        change = rng.choice(["enroll", "switch", "clear", "move"])
        if change == "move":
            user.practice_id = elsewhere.id
        elif enrollment is None:
            _enroll(user.id, rng.choice(["totp", "sms", "email"]), now - timedelta(minutes=rng.randint(1, 99)))
        elif change == "clear":
            db.session.delete(enrollment)
        else:  # a switch rewrites the row in place
            enrollment.method = "email" if enrollment.method != "email" else "totp"
            enrollment.phone_e164 = None
            enrollment.totp_secret = "not-a-real-token" if enrollment.method == "totp" else None
            enrollment.enrolled_at = now - timedelta(minutes=rng.randint(1, 99))
        db.session.commit()
    _assert_every_order(client, practice.id)


def test_the_method_column_sorts_by_the_names_it_shows(client, auth):
    """Sorting by MFA: are the methods in the alphabetical order of their names as shown
    (Authenticator Apps, Email, SMS), reversed descending, with No MFA last both ways?"""
    practice = make_practice("Method Clinic")
    login_admin(auth, practice, email="admin@method.test")
    now = utcnow()
    for number, method in enumerate(["sms", "totp", "email", None, "sms", "email", "totp"]):
        user = User(email=f"m{number}@method.test", display_name=f"M {number}", role="clinician",
                    practice_id=practice.id, password_hash=hash_password(PASSWORD))
        db.session.add(user)
        db.session.flush()
        if method:
            _enroll(user.id, method, now)
    db.session.commit()
    labels = sorted(method.label for method in methods.ALL)
    ascending = [row[3] for row in table_rows(client.get(REVIEW, query_string={"sort": "method"}).get_data(
        as_text=True))]
    descending = [row[3] for row in table_rows(client.get(REVIEW, query_string={"sort": "method", "dir": "desc"})
                                               .get_data(as_text=True))]
    shown = [label for label in dict.fromkeys(ascending) if label != "No MFA"]
    assert shown == labels and ascending[-2:] == ["No MFA", "No MFA"]
    assert [label for label in dict.fromkeys(descending) if label != "No MFA"] == labels[::-1]
    assert descending[-2:] == ["No MFA", "No MFA"]


def test_the_enrolled_column_shows_the_current_method_s_date_after_a_switch(client, auth):
    """After a switch of method, do the Enrolled column and its sort follow the new method's date?"""
    practice = make_practice("Switch Clinic")
    login_admin(auth, practice, email="admin@switch.test")
    now = utcnow()
    for number, days in enumerate([5, 3, 1]):
        user = User(email=f"s{number}@switch.test", display_name=f"S {number}", role="clinician",
                    practice_id=practice.id, password_hash=hash_password(PASSWORD))
        db.session.add(user)
        db.session.flush()
        _enroll(user.id, "email", now - timedelta(days=days))
    db.session.commit()
    first = db.session.scalar(select(MfaEnrollment).join(User).where(User.email == "s0@switch.test"))
    first.enrolled_at = now
    db.session.commit()
    rows = table_rows(client.get(REVIEW, query_string={"sort": "enrolled", "dir": "desc"}).get_data(as_text=True))
    assert [row[1] for row in rows][:3] == ["s0@switch.test", "s2@switch.test", "s1@switch.test"]
    assert rows[0][4] == format_time(now)


# --- PostgreSQL: each sort's page from an index ---------------------------------------------------

PLAN_CASES = [dict(sort=sort, dir=direction) for sort in SORTS for direction in ("asc", "desc")] + [
    dict(sort=sort, filter=filter_, dir=direction) for sort in ("method", "enrolled", "last_mfa")
    for filter_ in ("with_mfa", "without_mfa") for direction in ("asc", "desc")]


@pytest.fixture
def large_practice(app):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the review's sort indexes are PostgreSQL's (SQLite sorts its small practices)")
    practice = make_practice("Plan Clinic")
    password_hash = hash_password(PASSWORD)
    now = utcnow()
    db.session.execute(insert(User), [
        dict(email=f"plan{i:05d}@plan.test", display_name=f"Plan User {i:05d}", role="clinician",
             practice_id=practice.id, password_hash=password_hash,
             last_mfa_at=None if i % 3 == 0 else now - timedelta(minutes=i))
        for i in range(3000)])
    ids = db.session.scalars(select(User.id).where(User.practice_id == practice.id).order_by(User.id)).all()
    db.session.execute(insert(MfaEnrollment), [
        dict(user_id=user_id, method=("email", "totp", "sms")[n % 3], enrolled_at=now - timedelta(minutes=n),
             totp_secret="not-a-real-token" if n % 3 == 1 else None,
             phone_e164="+12025550143" if n % 3 == 2 else None)
        for n, user_id in enumerate(ids) if n % 4])
    db.session.commit()
    db.session.execute(text("ANALYZE users"))
    return practice


@pytest.mark.parametrize("page_number", [3, 118], ids=["early page", "page near the end"])
@pytest.mark.parametrize("case", PLAN_CASES, ids=lambda case: "-".join(case.values()))
def test_postgresql_reads_each_sort_s_page_from_an_index(large_practice, case, page_number):
    """Can PostgreSQL find each sort's page (either way, with each filter) in an index, in order,
    instead of sorting the practice? Also a page past the middle, which is read from the end
    backwards. (An ORDER BY that no index matches, e.g. a NULLs term or a tie-breaker in the
    other direction, fails this.)"""
    captured = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        captured.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        page = review.users_page(large_practice.id, review.TableQuery.from_args({**case, "page": page_number}))
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    assert len(page.rows) == review.PER_PAGE
    statement, parameters = captured[-1]
    # With sorting priced out, a plan still sorts below the LIMIT only if no index has the order.
    db.session.execute(text("SET LOCAL enable_sort = off"))
    plan = db.session.connection().exec_driver_sql("EXPLAIN " + statement, parameters).scalars().all()
    db.session.rollback()
    below_limit = plan[next(n for n, line in enumerate(plan) if "Limit" in line):]
    assert not any("Sort" in line and "Sort Key" not in line for line in below_limit), "\n".join(plan)
    assert any("Index" in line and " on users " in line for line in below_limit), "\n".join(plan)


def test_postgresql_reads_a_deep_name_page_s_ids_from_the_index_alone(large_practice):
    """A page far down the name sort skips every row before it: are those read from the index
    alone, never visiting each user's row? (An index on lower(display_name) without the column
    itself cannot be read alone, and a deep page then costs a visit per row above it.)"""
    captured = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        captured.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        page = review.users_page(large_practice.id, review.TableQuery.from_args({"sort": "name", "page": 5}))
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    assert len(page.rows) == review.PER_PAGE
    statement, parameters = next((s, p) for s, p in captured if "OFFSET" in s.upper())
    db.session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE users")  # the visibility map, as autovacuum keeps it
    for plan_kind in ("seqscan", "indexscan", "bitmapscan"):  # any other way of reading is priced out
        db.session.execute(text(f"SET LOCAL enable_{plan_kind} = off"))
    plan = db.session.connection().exec_driver_sql("EXPLAIN " + statement, parameters).scalars().all()
    db.session.rollback()
    assert any("Index Only Scan using ix_users_review_name" in line for line in plan), "\n".join(plan)
