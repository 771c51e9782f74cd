"""Races on the code step (checklist 11 and 12): is a code good for exactly one login, however
many requests carry it at once, and do parallel sessions still share one failure counter?

Twenty threads wait on a barrier and fire together. HTTP threads each have their own test
client holding the same pending-login session cookie, as twenty tabs (or an attacker replaying
a captured request) would. PostgreSQL is the real check; SQLite serialises writers, so the
same assertions hold there too. The last tests ask what such races do to the server-side
session store and to the audit chain.
"""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pyotp
import pytest
from flask import request
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from portal import audit
from portal.extensions import db
from portal.mfa import codes
from portal.mfa.errors import MfaError
from portal.models import AuditEvent, MfaCode, User
from tests.factories import PASSWORD, make_enrollment, make_user
from tests.functional.mfa_helpers import last_code
from tests.functional.parallel import POOL, SESSION_STORES, THREADS, clones, fire, log_in

E164 = "+12025550143"


@pytest.fixture(params=list(SESSION_STORES))
def race_app(make_app, app, request):
    """The app under test, with a connection pool large enough for every thread at once.

    Unchanged sessions are not re-saved on every request (SESSION_REFRESH_EACH_REQUEST off, the
    default), so these races exercise code verification alone; how the session store copes with
    racing saves is tested separately (`session_app`, which saves on every request).
    """
    return make_app(SQLALCHEMY_ENGINE_OPTIONS=POOL, SESSION_REFRESH_EACH_REQUEST=False, **SESSION_STORES[request.param])


@pytest.fixture(params=list(SESSION_STORES))
def session_app(make_app, app, request):
    """The app under test saving its session on every request, so saves race each other."""
    return make_app(SQLALCHEMY_ENGINE_OPTIONS=POOL, SESSION_REFRESH_EACH_REQUEST=True, **SESSION_STORES[request.param])


def assert_one_login(clients, responses) -> None:
    outcomes = [(response.status_code, response.headers.get("Location")) for response in responses]
    assert outcomes.count((303, "/")) == 1, outcomes
    for outcome in outcomes:
        if outcome == (303, "/"):
            continue
        status, location = outcome
        # Refused: the code is spent (400), the losers' failures locked the account (429),
        # or the winner's new session id already ended the shared pending state (to Log In).
        assert status in (400, 429) or (status == 303 and location.startswith("/login")), outcomes
    signed_in = [client.get("/").status_code for client in clients]
    assert signed_in.count(200) == 1, signed_in


def test_one_sms_code_sent_twenty_times_at_once_logs_in_once(race_app, outbox, clock):
    """Do 20 simultaneous submissions of one valid SMS code sign in exactly once?"""
    user = make_user("race-sms@example.test")
    make_enrollment(user, "sms", phone=E164)
    clients = clones(race_app, log_in(race_app, "race-sms@example.test"), THREADS)
    code = last_code(outbox, E164, "sms")

    responses = fire(THREADS, lambda i: clients[i].post("/login/code", data={"code": code}))

    assert_one_login(clients, responses)
    consumed = db.session.scalars(select(MfaCode.consumed_at).where(MfaCode.user_id == user.id)).all()
    assert len(consumed) == 1 and consumed[0] is not None


def test_one_totp_code_sent_twenty_times_at_once_logs_in_once(race_app, clock):
    """Do 20 simultaneous submissions of one authenticator code (one time step) sign in once?"""
    user = make_user("race-totp@example.test")
    secret = make_enrollment(user, "totp")
    clients = clones(race_app, log_in(race_app, "race-totp@example.test"), THREADS)
    code = pyotp.TOTP(secret).at(clock.now())

    responses = fire(THREADS, lambda i: clients[i].post("/login/code", data={"code": code}))

    assert_one_login(clients, responses)
    db.session.expire_all()
    assert db.session.get(User, user.id).totp_last_step == int(clock.now().timestamp()) // 30


def test_verify_service_consumes_a_code_once_under_contention(make_app, app, clock):
    """Does codes.verify, called by 20 threads at once with the right code (each committing), accept it once?"""
    service = make_app(SQLALCHEMY_ENGINE_OPTIONS=POOL)
    user = make_user("race-service@example.test")
    make_enrollment(user, "sms", phone=E164)
    now, challenge = clock.now(), codes.new_challenge()
    record, code = codes.issue(user, purpose="login", channel="sms", destination=E164, challenge=challenge, now=now)
    codes.confirm_sent(user, record, now)  # as the sender does once the text went out
    db.session.commit()
    user_id, record_id = user.id, record.id
    sqlite = db.engine.dialect.name == "sqlite"

    def attempt(_):
        with service.app_context():
            try:
                person = db.session.get(User, user_id)  # each thread loads its own user
                codes.verify(person, purpose="login", challenge=challenge, raw_code=code, now=now)
                db.session.commit()  # as every caller does, with its own work
                return "accepted"
            except MfaError as error:
                return type(error).__name__
            except OperationalError as error:
                # SQLite's busy timeout can run out under 20 writers: a refusal, not a success.
                if sqlite and "database is locked" in str(error):
                    return "database is locked"
                raise
            finally:
                db.session.remove()

    outcomes = fire(THREADS, attempt)

    assert outcomes.count("accepted") == 1, outcomes
    assert set(outcomes) <= {"accepted", "InvalidCode", "NoActiveCode", "AccountLocked", "database is locked"}, outcomes
    db.session.expire_all()
    assert db.session.get(MfaCode, record_id).consumed_at is not None


def test_wrong_codes_from_parallel_sessions_lock_the_account(race_app, outbox, clock):
    """Do 10 wrong codes spread over 3 sessions running at once lock the account, so that even
    the right code is then refused with a 429?"""
    user = make_user("race-lock@example.test")
    make_enrollment(user, "sms", phone=E164)
    sessions, sent = [], []
    for _ in range(3):
        sessions.append(log_in(race_app, "race-lock@example.test"))
        sent.append(last_code(outbox, E164, "sms"))  # each Log In voids the previous code
        clock.advance(seconds=31)
    wrong = [f"{n:06d}" for n in range(100_000, 100_020) if f"{n:06d}" not in sent][:10]
    # 3 + 3 wrong codes in the sessions whose code was replaced, 4 against the live code
    # (under the 5 tries one code allows, so every one of them counts).
    plan = [wrong[0:3], wrong[3:6], wrong[6:10]]

    statuses = fire(3, lambda i: [sessions[i].post("/login/code", data={"code": c}).status_code for c in plan[i]])

    flat = [status for batch in statuses for status in batch]
    # Every one was refused; the 10th failure (whichever session it lands in) locks the account.
    assert set(flat) <= {400, 429} and flat.count(429) <= 1, statuses
    db.session.expire_all()
    locked = db.session.get(User, user.id)
    assert locked.mfa_locked_until is not None and locked.mfa_locked_until > clock.now()
    response = sessions[2].post("/login/code", data={"code": sent[-1]})
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
    assert all(session.get("/").status_code == 303 for session in sessions)
    assert "locked" in outbox.last("race-lock@example.test", "email").body_text  # checklist 15


def test_the_failure_that_locks_says_so_in_any_session(race_app, outbox, clock):
    """When the 10th wrong code lands in a session whose code was replaced by a newer Log In,
    is the answer the lock (429, Retry-After) rather than "no code waiting, get a new one"?"""
    user = make_user("lock-message@example.test")
    make_enrollment(user, "sms", phone=E164)
    stale = log_in(race_app, "lock-message@example.test")
    clock.advance(seconds=31)
    live = log_in(race_app, "lock-message@example.test")  # voids the first session's code
    sent = last_code(outbox, E164, "sms")
    wrong = [f"{n:06d}" for n in range(200_000, 200_012) if f"{n:06d}" != sent]
    answers = [live.post("/login/code", data={"code": c}).status_code for c in wrong[:5]]
    answers += [stale.post("/login/code", data={"code": c}).status_code for c in wrong[5:9]]
    assert answers == [400] * 9
    response = stale.post("/login/code", data={"code": wrong[9]})  # the 10th failure
    db.session.expire_all()
    assert db.session.get(User, user.id).mfa_locked_until is not None  # the lock itself happens
    shown = re.findall(r'role="alert">([^<]+)<', response.get_data(as_text=True))
    assert response.status_code == 429, (response.status_code, shown)
    assert int(response.headers["Retry-After"]) > 0
    assert "Too many incorrect codes" in response.get_data(as_text=True)


def test_racing_requests_on_one_session_get_no_server_error(session_app, outbox, clock):
    """While the winning code renews the session id, do the 19 losing requests on the old id,
    each of which saves the session again, all get an answer rather than a server error?

    Up to five rounds make a lost race (two saves inserting the retired id at once) near certain.
    """
    for round_ in range(5):
        email = f"race-session-{round_}@example.test"
        user = make_user(email)
        make_enrollment(user, "sms", phone=E164)
        clients = clones(session_app, log_in(session_app, email, open_code_page=False), THREADS)
        code = last_code(outbox, E164, "sms")

        def attempt(i, clients=clients, code=code):
            try:
                return clients[i].post("/login/code", data={"code": code}).status_code
            except Exception as error:  # TESTING propagates what production answers with a 500
                return f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"

        outcomes = fire(THREADS, attempt)
        assert all(isinstance(outcome, int) and outcome < 500 for outcome in outcomes), (round_, outcomes)


def test_a_request_in_flight_at_logout_does_not_revive_the_session(session_app):
    """If a page is still loading in another tab when the user logs out, does its end bring
    the logged-out session back, so that the old cookie works again (checklist 41, 45)?"""
    entered, release = threading.Event(), threading.Event()

    @session_app.before_request
    def hold_marked_requests():
        if request.headers.get("X-Test-Hold"):
            entered.set()
            release.wait(timeout=10)

    make_user("tab@example.test")
    browser = session_app.test_client()
    response = browser.post("/login", data={"email": "tab@example.test", "password": PASSWORD})
    assert response.headers["Location"] == "/"
    other_tab, stolen = clones(session_app, browser, 2)
    with ThreadPoolExecutor(max_workers=1) as pool:
        slow_page = pool.submit(other_tab.get, "/", headers={"X-Test-Hold": "1"})
        assert entered.wait(timeout=10)  # the slow page has read the logged-in session
        assert browser.post("/logout").status_code == 303
        assert stolen.get("/").status_code == 303  # logged out
        release.set()
        slow_page.result(timeout=10)
    response = stolen.get("/")
    assert response.status_code == 303 and response.headers["Location"].startswith("/login"), (
        "the session came back after logout")


def test_audit_chain_stays_intact_when_code_submissions_race(race_app, outbox, clock):
    """Does the hash-chained audit trail (checklist 50) still verify after 20 racing requests,
    each of which records an event? A fork would look like tampering to `flask audit verify`."""
    user = make_user("race-audit@example.test")
    make_enrollment(user, "sms", phone=E164)
    clients = clones(race_app, log_in(race_app, "race-audit@example.test"), THREADS)
    code = last_code(outbox, E164, "sms")

    responses = fire(THREADS, lambda i: clients[i].post("/login/code", data={"code": code}))

    report = audit.verify_chain()
    events = db.session.scalars(select(AuditEvent.event_type).order_by(AuditEvent.id)).all()
    db.session.rollback()
    assert report.ok, report
    assert report.checked == len(events)
    # One login; every submission that was judged left its event. (A request that arrives after
    # the login replaced the session finds no sign-in in progress and is sent to Log In.)
    judged = [r for r in responses if r.status_code in (400, 429)]
    assert events.count("login.succeeded") == 1
    assert events.count("mfa.code_failed") == len(judged) >= 1
    assert all(r.status_code in (303, 400, 429) for r in responses)
