"""One-time SMS and email codes: generation, storage, binding, expiry and the limits.

Every service takes `now=`; time is moved by passing a later `now`, never by sleeping.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from portal.extensions import db
from portal.mfa import codes
from portal.mfa.errors import (
    AccountLocked,
    CodeExpired,
    CodeUsedUp,
    InvalidCode,
    MalformedCode,
    NoActiveCode,
    SendThrottled,
)
from portal.models import User
from tests.factories import make_user

T0 = datetime(2030, 3, 4, 9, 0, 0, tzinfo=UTC)
PHONE = "+12025550143"


def issue_code(user, now, *, purpose="login", challenge="challenge-a", channel="email", destination=None):
    """Issue a code and commit it, as the sender does once the message is handed over."""
    record, code = codes.issue(user, purpose=purpose, channel=channel, destination=destination or user.email,
                               challenge=challenge, now=now)
    codes.confirm_sent(user, record, now)
    db.session.commit()
    return code


def wrong(code: str) -> str:
    """A well-formed code that is certainly not `code`."""
    return f"{(int(code) + 1) % 1_000_000:06d}"


def verify(user, code, now, *, purpose="login", challenge="challenge-a"):
    """Check a code and commit a success, as every caller does with its own work."""
    record = codes.verify(user, purpose=purpose, challenge=challenge, raw_code=code, now=now)
    db.session.commit()
    return record


def failed_count(user) -> int:
    db.session.expire_all()
    return db.session.scalar(select(User.mfa_failed_count).where(User.id == user.id))


# -- generation and input -----------------------------------------------------------------


def test_generated_codes_are_six_digits_with_leading_zeros_kept():
    """Are 100,000 generated codes all six ASCII digits, with about a tenth starting with 0?"""
    samples = [codes.generate_code() for _ in range(100_000)]
    pattern = re.compile(r"^[0-9]{6}$", re.ASCII)
    assert all(pattern.match(code) for code in samples)
    leading_zero = sum(code.startswith("0") for code in samples) / len(samples)
    assert 0.08 <= leading_zero <= 0.12
    assert len(set(samples)) > 60_000  # not a short cycle or a constant


@pytest.mark.parametrize("raw", ["123 456", "123-456", " 123456 ", "123456"])
def test_spaces_and_dashes_are_ignored_in_a_typed_code(raw):
    """Does a code typed with a space, a dash or stray spaces still read as the six digits?"""
    assert codes.normalise_code(raw) == "123456"


@pytest.mark.parametrize(
    "raw",
    [
        "12345",
        "1234567",
        "١٢٣٤٥٦",  # Arabic-Indic digits: \d would take them, the code does not
        "１２３４５６",  # full-width digits
        "12345a",
        "",
        None,
        "1" * 10_000,
        "123456\n",
    ],
    ids=["five", "seven", "arabic-indic", "full-width", "letter", "empty", "none", "huge", "newline"],
)
def test_anything_but_six_ascii_digits_is_malformed(raw):
    """Is every input that is not six ASCII digits refused as malformed?"""
    with pytest.raises(MalformedCode):
        codes.normalise_code(raw)


def test_malformed_submissions_do_not_count_towards_the_lock(app):
    """Can a user mistype (letters, too short) many times without being locked out?"""
    user = make_user()
    code = issue_code(user, T0)
    for _ in range(12):
        with pytest.raises(MalformedCode):
            verify(user, "12a456", T0 + timedelta(seconds=5))
    verify(user, code, T0 + timedelta(seconds=10))


# -- storage --------------------------------------------------------------------------------


def test_the_stored_row_never_holds_the_plain_code(app):
    """Could someone reading the mfa_codes table learn the code that was sent?"""
    user = make_user()
    code = issue_code(user, T0, channel="sms", destination=PHONE)
    rows = db.session.execute(text("SELECT * FROM mfa_codes")).mappings().all()
    assert len(rows) == 1
    for column, value in rows[0].items():
        assert code not in str(value), f"column {column} holds the code"
        assert PHONE not in str(value), f"column {column} holds the phone number"
    # The row still serves its purpose: the code is accepted.
    verify(user, code, T0 + timedelta(seconds=5))


def test_code_hmac_is_bound_to_user_purpose_challenge_and_key(app, make_app):
    """Does the same code hash differently for another user, purpose, challenge or server key?"""
    base = codes.code_hmac(1, "login", "challenge-a", "123456")
    assert base == codes.code_hmac(1, "login", "challenge-a", "123456")
    variants = {
        codes.code_hmac(2, "login", "challenge-a", "123456"),
        codes.code_hmac(1, "enroll", "challenge-a", "123456"),
        codes.code_hmac(1, "login", "challenge-b", "123456"),
        codes.code_hmac(1, "login", "challenge-a", "123457"),
    }
    assert base not in variants and len(variants) == 4
    with make_app(SECRET_KEY="another-secret-key-entirely").app_context():
        assert codes.code_hmac(1, "login", "challenge-a", "123456") != base


# -- verification ---------------------------------------------------------------------------


def test_code_is_accepted_just_before_it_expires(app):
    """Is a code still accepted at 4:59 after it was issued?"""
    user = make_user()
    code = issue_code(user, T0)
    record = verify(user, code, T0 + timedelta(minutes=4, seconds=59))
    assert record.consumed_at is not None


def test_code_is_refused_after_five_minutes(app):
    """Is a code refused as expired at 5:01 after it was issued?"""
    user = make_user()
    code = issue_code(user, T0)
    with pytest.raises(CodeExpired):
        verify(user, code, T0 + timedelta(minutes=5, seconds=1))


def test_a_used_code_cannot_be_replayed(app):
    """Does a code that logged someone in fail when submitted a second time?"""
    user = make_user()
    code = issue_code(user, T0)
    verify(user, code, T0 + timedelta(seconds=10))
    with pytest.raises((NoActiveCode, InvalidCode)):
        verify(user, code, T0 + timedelta(seconds=20))


def test_a_resent_code_voids_the_old_one(app, monkeypatch):
    """After "click here" sends a new code, is the old code refused and the new one accepted?"""
    # Fixed codes, so the old and new code can never coincide by chance.
    monkeypatch.setattr(codes, "generate_code", iter(["111111", "222222"]).__next__)
    user = make_user()
    old = issue_code(user, T0)
    new = issue_code(user, T0 + timedelta(seconds=31))
    with pytest.raises(InvalidCode):
        verify(user, old, T0 + timedelta(seconds=40))
    verify(user, new, T0 + timedelta(seconds=41))


def test_a_code_from_another_session_dies_when_a_new_login_sends_one(app):
    """Is a code sent to an earlier login attempt refused once a newer attempt asked for a code?"""
    user = make_user()
    first = issue_code(user, T0, challenge="session-one")
    issue_code(user, T0 + timedelta(seconds=31), challenge="session-two")
    with pytest.raises((NoActiveCode, InvalidCode)):
        verify(user, first, T0 + timedelta(seconds=40), challenge="session-one")


def test_an_enrollment_code_does_not_work_for_login(app):
    """Is a code sent to confirm a new phone refused at the login code step?"""
    user = make_user()
    code = issue_code(user, T0, purpose="enroll")
    with pytest.raises((NoActiveCode, InvalidCode)):
        verify(user, code, T0 + timedelta(seconds=5), purpose="login")
    verify(user, code, T0 + timedelta(seconds=6), purpose="enroll")


def test_a_code_only_works_in_the_session_that_asked_for_it(app):
    """Is a code bound to challenge A refused when submitted with challenge B?"""
    user = make_user()
    code = issue_code(user, T0, challenge="challenge-a")
    with pytest.raises((NoActiveCode, InvalidCode)):
        verify(user, code, T0 + timedelta(seconds=5), challenge="challenge-b")
    verify(user, code, T0 + timedelta(seconds=6), challenge="challenge-a")


def test_five_wrong_tries_kill_the_code(app):
    """After five wrong tries, is even the correct code refused?"""
    user = make_user()
    code = issue_code(user, T0)
    for attempt in range(1, 6):
        expected = CodeUsedUp if attempt == 5 else InvalidCode
        with pytest.raises(expected):
            verify(user, wrong(code), T0 + timedelta(seconds=attempt))
    with pytest.raises(CodeUsedUp):
        verify(user, code, T0 + timedelta(seconds=10))


# -- the account-wide lock ------------------------------------------------------------------


def test_ten_failures_across_codes_lock_the_account_for_fifteen_minutes(app):
    """Do 10 wrong codes across a resend lock the account for 15 minutes, refusing even a right code?"""
    user = make_user()
    first = issue_code(user, T0)
    for i in range(5):
        with pytest.raises((InvalidCode, CodeUsedUp)):
            verify(user, wrong(first), T0 + timedelta(seconds=i + 1))
    second = issue_code(user, T0 + timedelta(seconds=31))  # a resend must not reset the count
    for i in range(4):
        with pytest.raises(InvalidCode):
            verify(user, wrong(second), T0 + timedelta(seconds=32 + i))
    locked_at = T0 + timedelta(seconds=40)
    with pytest.raises(AccountLocked) as locked:
        verify(user, wrong(second), locked_at)
    assert locked.value.retry_after == timedelta(minutes=15)
    assert "15 minutes" in str(locked.value)

    with pytest.raises(AccountLocked):  # while the lock runs no code is even sent
        issue_code(user, locked_at + timedelta(minutes=14))
    with pytest.raises(AccountLocked):  # and a right code is refused
        verify(user, second, locked_at + timedelta(minutes=14, seconds=59))

    after = issue_code(user, locked_at + timedelta(minutes=15))
    verify(user, after, locked_at + timedelta(minutes=15, seconds=1))


def test_a_success_resets_the_failure_count(app):
    """After a correct code, does the user get a full 10 tries again before a lock?"""
    user = make_user()
    first = issue_code(user, T0)
    for i in range(4):
        with pytest.raises(InvalidCode):
            verify(user, wrong(first), T0 + timedelta(seconds=i + 1))
    verify(user, first, T0 + timedelta(seconds=5))
    assert failed_count(user) == 0

    # Nine more failures: 13 in all, but only 9 since the success, so no lock.
    second = issue_code(user, T0 + timedelta(seconds=40))
    for i in range(5):
        with pytest.raises((InvalidCode, CodeUsedUp)):
            verify(user, wrong(second), T0 + timedelta(seconds=41 + i))
    third = issue_code(user, T0 + timedelta(seconds=80))
    for i in range(4):
        with pytest.raises(InvalidCode):
            verify(user, wrong(third), T0 + timedelta(seconds=81 + i))
    verify(user, third, T0 + timedelta(seconds=90))
    assert failed_count(user) == 0


# -- send limits ----------------------------------------------------------------------------


def test_a_second_code_within_thirty_seconds_is_throttled(app):
    """Does asking for another code 10 s after the last one say how long to wait, and work after 30 s?"""
    user = make_user()
    issue_code(user, T0)
    with pytest.raises(SendThrottled) as throttled:
        issue_code(user, T0 + timedelta(seconds=10))
    assert throttled.value.retry_after == timedelta(seconds=20)
    assert "20 seconds" in str(throttled.value)
    available_at = codes.resend_available_at(user, "email", user.email, T0 + timedelta(seconds=10))
    assert available_at == T0 + timedelta(seconds=30)
    assert codes.resend_available_at(user, "email", user.email, T0 + timedelta(seconds=30)) is None
    issue_code(user, T0 + timedelta(seconds=30))


def test_a_sixth_code_within_an_hour_is_throttled(app):
    """Are five codes an hour the most one user can be sent?"""
    user = make_user()
    for i in range(5):
        issue_code(user, T0 + timedelta(seconds=31 * i))
    sixth_at = T0 + timedelta(seconds=31 * 5)
    with pytest.raises(SendThrottled) as throttled:
        issue_code(user, sixth_at)
    assert throttled.value.retry_after == T0 + timedelta(hours=1) - sixth_at
    assert "minutes" in str(throttled.value)
    issue_code(user, T0 + timedelta(hours=1, seconds=1))


def test_an_eleventh_sms_to_one_number_in_a_day_is_throttled(app):
    """Can many accounts pump texts to one number? Is the 11th in a day refused, other numbers not?"""
    users = [make_user() for _ in range(11)]
    for i, user in enumerate(users[:10]):
        issue_code(user, T0 + timedelta(hours=i * 2), channel="sms", destination=PHONE)
    late = T0 + timedelta(hours=23)
    last_user = users[10]
    with pytest.raises(SendThrottled) as throttled:
        issue_code(last_user, late, channel="sms", destination=PHONE)
    assert throttled.value.retry_after == T0 + timedelta(days=1) - late
    # The limit is per number: another number, or email, still gets its code.
    issue_code(last_user, late, channel="sms", destination="+12125550143")
    issue_code(make_user(), late, channel="email")
    # A day after the first text, the number may receive one again.
    issue_code(make_user(), T0 + timedelta(days=1, seconds=1), channel="sms", destination=PHONE)


def test_resend_wait_counts_the_numbers_daily_limit(app):
    """When a number has had its 10 texts today, does the code page say so instead of offering a resend?"""
    for i in range(10):
        issue_code(make_user(), T0 + timedelta(minutes=i), channel="sms", destination="+12025550143")
    user = make_user()
    later = T0 + timedelta(hours=1)
    assert codes.resend_available_at(user, "email", user.email, later) is None
    assert codes.resend_available_at(user, "sms", "+12025550143", later) == T0 + timedelta(days=1)


def test_global_daily_sms_cap_stops_all_texts(make_app):
    """Is there a ceiling on texts per day across all users and numbers (SMS pumping)?"""
    capped = make_app(MFA_SMS_GLOBAL_PER_DAY=3)
    with capped.app_context():
        for i in range(3):
            issue_code(make_user(), T0 + timedelta(minutes=i), channel="sms", destination=f"+1202555014{i}")
        with pytest.raises(SendThrottled):
            issue_code(make_user(), T0 + timedelta(minutes=5), channel="sms", destination="+12025550149")
        # Email codes are not held back by the SMS ceiling.
        issue_code(make_user(), T0 + timedelta(minutes=6))


def test_codes_are_compared_in_constant_time(app, monkeypatch):
    """Is every code check done with hmac.compare_digest (no early-exit string compare)?"""
    import hmac as hmac_module

    calls = []
    real = hmac_module.compare_digest

    def spy(a, b):
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(codes.hmac, "compare_digest", spy)
    user = make_user()
    code = issue_code(user, T0)
    verify(user, code, T0 + timedelta(seconds=1))
    assert calls and all(a == b == 64 for a, b in calls)


def test_authenticator_codes_and_link_tokens_are_compared_in_constant_time(app, monkeypatch):
    import hmac as hmac_module

    import pyotp

    from portal.accounts import tokens
    from portal.mfa import totp

    calls = []
    real = hmac_module.compare_digest

    def spy(a, b):
        calls.append(True)
        return real(a, b)

    monkeypatch.setattr(totp.hmac, "compare_digest", spy)
    secret = totp.new_secret()
    assert totp.matching_step(secret, pyotp.TOTP(secret).at(T0), T0, None) is not None
    assert len(calls) == 3  # every step in the window, no early exit
    calls.clear()
    monkeypatch.setattr(tokens.hmac, "compare_digest", spy)
    nonce, digest = tokens.new_nonce()
    assert tokens.nonce_matches(digest, nonce)
    assert calls
