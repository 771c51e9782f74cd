"""A visitor who only looks at Log In (or another page with a form) is not stored: the cookie
carries their CSRF token, signed, so reloading Log In cannot fill the session store."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from flask_session.redis import RedisSessionInterface
from sqlalchemy import event, func, select

from portal.extensions import db
from portal.models import ServerSession
from portal.sessions import VISITOR_COOKIE_PREFIX
from tests.conftest import session_cookie, token_from
from tests.factories import PASSWORD, make_user
from tests.functional.parallel import POOL, SESSION_STORES, THREADS, clones, fire

EXPIRED_FORM = "This form has expired"



def stored_sessions(app) -> int:
    """How many session records the configured store holds."""
    interface = app.session_interface
    if isinstance(interface, RedisSessionInterface):
        prefix = app.config["SESSION_KEY_PREFIX"]
        return sum(1 for key in interface.client.scan_iter(match=f"{prefix}*") if b"!" not in key)
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(ServerSession))



def test_looking_at_log_in_stores_nothing_and_logging_in_still_works(csrf_app, app):
    """Do Log In and the other public forms, viewed again and again, leave the store as it was,
    while the token they carry still lets the visitor Log In?"""
    make_user("visitor@example.test")
    before = stored_sessions(csrf_app)
    client = csrf_app.test_client()
    for path in ["/login", "/forgot-password", "/login", "/login"]:
        assert client.get(path).status_code == 200
    token = token_from(client.get("/login"))
    assert session_cookie(client, csrf_app).startswith(VISITOR_COOKIE_PREFIX)
    assert stored_sessions(csrf_app) == before

    response = client.post("/login", data={"email": "visitor@example.test", "password": PASSWORD,
                                           "csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"] == "/"
    assert not session_cookie(client, csrf_app).startswith(VISITOR_COOKIE_PREFIX)  # a session id now
    assert stored_sessions(csrf_app) == before + 1
    assert client.get("/").status_code == 200


def test_the_log_in_page_reads_and_writes_nothing_in_the_database(csrf_app, app):
    """Does a visitor's Log In page, with its CSRF token, cost no SQL statement at all?"""
    client = csrf_app.test_client()
    seen = []

    def record(_conn, _cursor, statement, *_args):
        seen.append(statement)

    with csrf_app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        for _ in range(3):  # the first view and reloads
            assert 'name="csrf_token"' in client.get("/login").get_data(as_text=True)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert seen == []


def test_a_visitor_keeps_one_token_and_gets_no_new_cookie_per_page(csrf_app, app):
    """Is the token cookie set once, and the same token served on every later page?"""
    client = csrf_app.test_client()
    first = client.get("/login")
    assert "Set-Cookie" in first.headers and "Cookie" in first.headers.get("Vary", "")
    again = client.get("/login")
    assert "Set-Cookie" not in again.headers
    assert token_from(first) == token_from(again)


def test_hundreds_of_visitors_at_once_store_nothing(csrf_app, app):
    """Many first visits in parallel (a crawler, or someone filling the store): still nothing stored."""
    before = stored_sessions(csrf_app)

    def visit(_):
        return csrf_app.test_client().get("/login").status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(visit, range(200))) == {200}
    assert stored_sessions(csrf_app) == before


@pytest.mark.parametrize("store", list(SESSION_STORES))
def test_one_visitor_cookie_logging_in_many_times_at_once_gets_a_new_session_each_time(make_app, app, store):
    """The password sent at once from many tabs that share one visitor cookie: does each Log In
    get its own new, stored session id, none of them the cookie's (no fixation), and work?"""
    parallel_app = make_app(WTF_CSRF_ENABLED=True, SQLALCHEMY_ENGINE_OPTIONS=POOL, **SESSION_STORES[store])
    with parallel_app.app_context():
        make_user("tabs@example.test")
        before = stored_sessions(parallel_app)
        visitor = parallel_app.test_client()
        token = token_from(visitor.get("/login"))
        cookie = session_cookie(visitor, parallel_app)
        tabs = clones(parallel_app, visitor, THREADS)

        def log_in(index):
            response = tabs[index].post("/login", data={"email": "tabs@example.test", "password": PASSWORD,
                                                        "csrf_token": token})
            return response.status_code, session_cookie(tabs[index], parallel_app)

        results = fire(THREADS, log_in)
        assert {status for status, _ in results} == {303}
        sids = {sid for _, sid in results}
        assert len(sids) == THREADS and cookie not in sids
        assert not any(sid.startswith(VISITOR_COOKIE_PREFIX) for sid in sids)
        assert stored_sessions(parallel_app) == before + THREADS
        # Each tab then opens the dashboard (from threads: this test's app context, pushed for
        # the database, would otherwise lend its cached anonymous user to requests made here).
        assert fire(THREADS, lambda index: tabs[index].get("/").status_code) == [200] * THREADS


def test_a_changed_or_borrowed_token_cookie_is_refused(csrf_app, app):
    """Is a visitor cookie with a wrong signature, or another visitor's, refused at Log In?"""
    make_user("borrow@example.test")
    name = csrf_app.config["SESSION_COOKIE_NAME"]
    form = {"email": "borrow@example.test", "password": PASSWORD}

    mine = csrf_app.test_client()
    token = token_from(mine.get("/login"))
    cookie = session_cookie(mine, csrf_app)
    forged = cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")
    mine.set_cookie(name, forged)
    response = mine.post("/login", data={**form, "csrf_token": token})
    assert response.status_code == 400 and EXPIRED_FORM in response.get_data(as_text=True)

    other = csrf_app.test_client()
    other.get("/login")  # another visitor, with their own token cookie
    response = other.post("/login", data={**form, "csrf_token": token})  # but my form's token
    assert response.status_code == 400 and EXPIRED_FORM in response.get_data(as_text=True)
    assert other.get("/").status_code == 303


def test_a_token_cookie_older_than_a_session_may_live_is_refused(csrf_app, app, clock):
    """Does a visitor's token expire as a stored session would (after its 12 hours)?"""
    make_user("old@example.test")
    client = csrf_app.test_client()
    token = token_from(client.get("/login"))
    clock.advance(hours=12, minutes=1)
    response = client.post("/login", data={"email": "old@example.test", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 400 and EXPIRED_FORM in response.get_data(as_text=True)
    fresh = token_from(client.get("/login"))  # the page gives a new token, which works
    response = client.post("/login", data={"email": "old@example.test", "password": PASSWORD, "csrf_token": fresh})
    assert response.status_code == 303


def test_a_visitor_sent_to_log_in_with_a_message_is_not_stored(csrf_app, app):
    """The code page without a pending Log In sends the visitor to Log In with "Log In first.":
    is the message shown once, on the next page, with nothing stored, again and again?"""
    before = stored_sessions(csrf_app)
    client = csrf_app.test_client()
    for _ in range(3):
        response = client.get("/login/code")
        assert response.status_code == 303 and response.headers["Location"] == "/login"
        assert session_cookie(client, csrf_app).startswith(VISITOR_COOKIE_PREFIX)
        assert "Log In first." in client.get("/login").get_data(as_text=True)
        assert "Log In first." not in client.get("/login").get_data(as_text=True)  # shown once
    assert stored_sessions(csrf_app) == before


def test_a_visitor_cookie_signed_with_another_key_starts_afresh(csrf_app, app, make_app):
    """Is a visitor cookie made with another secret (or another purpose's salt) ignored, so its
    token and messages never reach the page?"""
    from itsdangerous import URLSafeTimedSerializer

    name = csrf_app.config["SESSION_COOKIE_NAME"]
    forged = URLSafeTimedSerializer("not-the-portal-key", salt="portal.visitor").dumps(
        {"csrf_token": "f" * 40, "_flashes": [["error", "Forged message"]]})
    client = csrf_app.test_client()
    client.set_cookie(name, VISITOR_COOKIE_PREFIX + forged)
    page = client.get("/login").get_data(as_text=True)
    assert "Forged message" not in page
    assert session_cookie(client, csrf_app) != VISITOR_COOKIE_PREFIX + forged
