"""Sending and guessing limits decided atomically: twenty requests at once, from one session
and from many, never get more than the rules allow (PostgreSQL in CI's second pass)."""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AuditEvent, MfaCode
from tests.factories import PASSWORD, make_enrollment, make_user
from tests.functional.parallel import POOL, THREADS, clones, fire, log_in

E164 = "+12025550143"


@pytest.fixture
def race_app(make_app, app):
    return make_app(SQLALCHEMY_ENGINE_OPTIONS=POOL)


def _codes_sent(user_id: int) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count(MfaCode.id)).where(MfaCode.user_id == user_id))


def test_twenty_click_heres_at_once_send_one_code(race_app, outbox, clock):
    """One session presses "click here" twenty times at once after the cooldown: is one code sent?"""
    user = make_user("clicks@example.test")
    make_enrollment(user, "email")
    client = log_in(race_app, "clicks@example.test")
    clock.advance(seconds=31)
    tabs = clones(race_app, client, THREADS)
    statuses = fire(THREADS, lambda i: tabs[i].post("/login/code/resend").status_code)
    assert sorted(set(statuses)) == [303]  # every tab is sent back to the code page
    assert _codes_sent(user.id) == 2  # the Log In's code and exactly one resend
    assert len([m for m in outbox.messages("clicks@example.test") if m.subject == "Your verification code"]) == 2


def test_twenty_log_ins_at_once_never_exceed_the_hourly_cap(race_app, outbox, clock):
    """Twenty correct-password Log Ins at once (twenty sessions): do codes stop at the hourly cap?"""
    user = make_user("many@example.test")
    make_enrollment(user, "email")
    statuses = fire(THREADS, lambda i: race_app.test_client().post(
        "/login", data={"email": "many@example.test", "password": PASSWORD}).status_code)
    assert statuses.count(303) == THREADS  # each reaches the code page (saying no code was sent, if so)
    assert _codes_sent(user.id) == race_app.config["MFA_CODES_PER_HOUR"] == 5


@pytest.mark.parametrize("cap, value", [("MFA_SMS_PER_NUMBER_PER_DAY", 3), ("MFA_SMS_GLOBAL_PER_DAY", 4)])
def test_texts_at_once_never_exceed_the_number_or_daily_ceiling(make_app, app, outbox, clock, cap, value):
    """Twenty users sharing one number (or twenty numbers) log in at once: do texts stop at the cap?"""
    racing = make_app(SQLALCHEMY_ENGINE_OPTIONS=POOL, **{cap: value})
    for n in range(THREADS):
        phone = E164 if cap == "MFA_SMS_PER_NUMBER_PER_DAY" else f"+1202555{n:04d}"
        make_enrollment(make_user(f"texter{n}@example.test"), "sms", phone=phone)
    fire(THREADS, lambda i: racing.test_client().post(
        "/login", data={"email": f"texter{i}@example.test", "password": PASSWORD}).status_code)
    db.session.expire_all()
    assert db.session.scalar(select(func.count(MfaCode.id)).where(MfaCode.channel == "sms")) == value
    assert len(outbox.messages(channel="sms")) == value


def test_a_burst_of_wrong_authenticator_codes_compares_at_most_ten(race_app, clock):
    """Twenty wrong app codes at once: are at most ten compared, and is the right code then refused?"""
    user = make_user("burst@example.test")
    secret = make_enrollment(user, "totp")
    client = log_in(race_app, "burst@example.test")
    right = pyotp.TOTP(secret).at(clock.now())
    wrong = [f"{n:06d}" for n in range(300_000, 300_040) if f"{n:06d}" != right][:THREADS]
    tabs = clones(race_app, client, THREADS)
    pages = fire(THREADS, lambda i: tabs[i].post("/login/code", data={"code": wrong[i]}))
    compared_wrong = [p for p in pages if "That code is not correct" in p.get_data(as_text=True)]
    refused = [p for p in pages if p.status_code == 429]
    # Nine "not correct", the tenth locks (429, saying so), the other ten are refused unseen.
    assert len(compared_wrong) == 9 and len(refused) == THREADS - 9, [p.status_code for p in pages]
    db.session.expire_all()
    assert db.session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.event_type == "mfa.locked")) == 1
    assert client.post("/login/code", data={"code": right}).status_code == 429
    assert client.get("/").status_code == 303


@pytest.mark.parametrize("method", ["sms", "email"])
def test_a_burst_on_one_code_compares_it_at_most_five_times(make_app, app, outbox, clock, method):
    """Twenty wrong tries at once on one texted or emailed code: is it compared at most five times?"""
    racing = make_app(SQLALCHEMY_ENGINE_OPTIONS=POOL, MFA_MAX_FAILED_CODES=100)
    user = make_user("tries@example.test")
    make_enrollment(user, method, phone=E164)
    client = log_in(racing, "tries@example.test")
    tabs = clones(racing, client, THREADS)
    pages = fire(THREADS, lambda i: tabs[i].post("/login/code", data={"code": f"{400_000 + i:06d}"}))
    # What each answer's error says (the line above the field may say the code is used up too).
    texts = [" ".join(re.findall(r'id="code-error" role="alert">([^<]+)<', p.get_data(as_text=True))) for p in pages]
    assert sum("That code is not correct" in t for t in texts) == 4
    assert sum("tried too many times" in t for t in texts) == THREADS - 4
    db.session.expire_all()
    record = db.session.scalar(select(MfaCode).where(MfaCode.user_id == user.id))
    assert record.attempts == 5


def test_every_spelling_of_an_account_shares_its_log_in_allowance(make_app, app, clock):
    """Case, spaces and Unicode variants of one address, sent at once: one allowance, not one each?"""
    limited = make_app(RATELIMIT_ENABLED=True, LIMIT_LOGIN_PER_ACCOUNT="3 per minute",
                       LIMIT_LOGIN_PER_ADDRESS="100 per minute", SQLALCHEMY_ENGINE_OPTIONS=POOL)
    make_user("c\u00e1sey@example.test")  # stored in NFC
    spellings = ["c\u00e1sey@example.test", "C\u00c1SEY@Example.TEST", " ca\u0301sey@example.test ",
                 "CA\u0301SEY@EXAMPLE.test"]
    probe = limited.test_client()
    statuses = fire(THREADS, lambda i: limited.test_client().post(
        "/login", data={"email": spellings[i % len(spellings)], "password": "wrong wrong wrong"}).status_code)
    assert statuses.count(429) == THREADS - 3, statuses
    right = probe.post("/login", data={"email": spellings[2], "password": PASSWORD})
    assert right.status_code == 429  # the allowance is spent for every spelling


def test_each_spelling_logs_in_to_the_same_account(client):
    """Does Log In accept every spelling the allowance test uses as the one account?"""
    make_user("c\u00e1sey@example.test")
    for spelling in ["C\u00c1SEY@Example.TEST", " ca\u0301sey@example.test ", "CA\u0301SEY@EXAMPLE.test"]:
        response = client.post("/login", data={"email": spelling, "password": PASSWORD})
        assert response.headers["Location"] == "/", spelling
        client.post("/logout")


def test_a_log_in_while_codes_are_locked_sends_no_code(client, outbox, clock):
    """With the account's codes locked, does the right password lead to the lock, and no code?"""
    user = make_user("locked-out@example.test")
    make_enrollment(user, "email")
    user.mfa_locked_until = clock.now() + timedelta(minutes=10)
    db.session.commit()
    response = client.post("/login", data={"email": "locked-out@example.test", "password": PASSWORD})
    assert response.headers["Location"] == "/login/code"
    page = client.get("/login/code").get_data(as_text=True)
    assert "Too many incorrect codes" in page
    assert _codes_sent(user.id) == 0 and outbox.messages("locked-out@example.test") == []
