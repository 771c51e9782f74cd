"""Support's user search at the size of a large practice: one bounded query, and on PostgreSQL
a plan that can use the trigram indexes (migration 0015) instead of reading every user."""

from __future__ import annotations

import pytest
from sqlalchemy import event, insert, text

from portal.accounts.passwords import hash_password
from portal.enforcement import directory
from portal.extensions import db
from portal.models import User
from tests.factories import PASSWORD, make_practice, make_user


def add_clinicians(practice, count: int, *, start: int = 0) -> None:
    password_hash = hash_password(PASSWORD)
    db.session.execute(insert(User), [
        dict(email=f"clinician{i:05d}@{practice.id}.search.test", display_name=f"Clinician {i:05d}",
             role="clinician", practice_id=practice.id, password_hash=password_hash)
        for i in range(start, start + count)
    ])
    db.session.commit()


def test_search_returns_at_most_one_page_whichever_way_users_match(app):
    """Do a practice-name match and a name match together give one page, in email order, without repeats?"""
    oak = make_practice("Oak Search Clinic")
    elm = make_practice("Elm Clinic")
    add_clinicians(oak, 60)
    add_clinicians(elm, 5)
    make_user("casey@elm.test", practice=elm, display_name="Casey Oakley")  # name contains "oak"

    results = directory.find_users("oak")

    emails = [user.email for user, _practice, _method in results]
    assert len(emails) == 50 and emails == sorted(emails) and len(set(emails)) == 50
    assert "casey@elm.test" in emails  # first by email ("c…" before "clinician…")
    assert {practice for _user, practice, _method in results} == {"Oak Search Clinic", "Elm Clinic"}
    found = [user.email for user, *_ in directory.find_users("CLINICIAN 00003")]
    assert found == [f"clinician00003@{oak.id}.search.test", f"clinician00003@{elm.id}.search.test"]


@pytest.mark.parametrize("term, index", [
    ("Clinician 01234", "ix_users_display_name_trgm"),
    ("clinician01234@", "ix_users_email_trgm"),
])
def test_postgresql_plan_can_use_the_trigram_index(app, term, index):
    """Can PostgreSQL answer a "contains" search from the trigram indexes (no full read of users)?
    (An ILIKE turned into lower(…) LIKE, or a pattern the index cannot serve, fails this.)"""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("trigram indexes exist on PostgreSQL only; SQLite reads its (small) tables")
    practice = make_practice("Plan Clinic")
    add_clinicians(practice, 2000)
    db.session.execute(text("ANALYZE users"))
    captured = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "FROM users" in statement and not captured:
            captured.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        assert len(directory.find_users(term)) == 1
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    statement, parameters = captured[0]
    # Small tables make any plan cheap; with plain scans priced out, the planner shows whether
    # the query's conditions can be answered from the trigram indexes at all (the benchmark
    # shows the planner choosing them at a million users).
    db.session.execute(text("SET LOCAL enable_seqscan = off"))
    db.session.execute(text("SET LOCAL enable_indexscan = off"))
    plan = "\n".join(db.session.connection().exec_driver_sql("EXPLAIN " + statement, parameters).scalars())
    db.session.rollback()
    assert index in plan, plan



def _users_rows_read_by_practice(statement, parameters) -> int:
    """Rows the executed plan read from the users table, returned or filtered out, in every
    loop, other than by matching names and emails (the trigram half, tested above).
    Sequential scans are priced out first: on a test-sized table one is cheap whatever the
    query, and a million users never get one."""
    db.session.execute(text("SET LOCAL enable_seqscan = off"))
    plan = db.session.connection().exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters).scalar()
    db.session.rollback()
    total, nodes = 0, [plan[0]["Plan"]]
    while nodes:
        node = nodes.pop()
        if node.get("Relation Name") == "users" and "~~" not in node.get("Filter", "") + node.get("Recheck Cond", ""):
            read = node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
            total += read * node.get("Actual Loops", 0)
        nodes += node.get("Plans", [])
    return total


@pytest.mark.parametrize("term, found, most", [("nobody-zz", 0, 0), ("Clinic C", 50, 100)])
def test_postgresql_practice_name_match_reads_only_the_matching_practices_users(app, term, found, most):
    """Does the practice-name half of a search read only users of the practices that match? A
    term matching no practice must read no user at all. Written as "users of these practices,
    by email", PostgreSQL walked the whole email index hoping to meet one soon (300 ms at
    300,000 users; it expects that plan where a few practices hold many users each, as here)."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the plan is PostgreSQL's; SQLite reads its (small) tables")
    for number, letter in enumerate("ABCDEFGH"):
        add_clinicians(make_practice(f"Clinic {letter}"), 750, start=number * 750)
    db.session.execute(text("ANALYZE"))
    db.session.commit()
    captured = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        captured.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        assert len(directory.find_users(term)) == found
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    statement, parameters = next((s, p) for s, p in reversed(captured) if "LIMIT" in s.upper())
    assert _users_rows_read_by_practice(statement, parameters) <= most
