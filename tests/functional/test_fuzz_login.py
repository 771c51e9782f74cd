"""Fuzzing Log In and its code step: can any input give a 500, a login or a stray write?

The strategies, helpers and what counts as a write are in fuzz_helpers.py.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from sqlalchemy import select

from portal.extensions import db
from portal.models import MfaCode, User
from tests.factories import PASSWORD, make_enrollment, make_user
from tests.functional.fuzz_helpers import (
    CODE_HTMX,
    E164,
    ENCODING,
    EXTRA,
    FIELD,
    FUZZ,
    RAW_BODY,
    VALUE,
    assert_handled,
    assert_logged_out,
    first,
    form_pairs,
    fresh,
    is_wellformed_code,
    parsed_field,
    repeats,
    row_counts,
    send,
)
from tests.functional.mfa_helpers import last_code

# -- Log In ---------------------------------------------------------------------------------

KNOWN_EMAILS = st.sampled_from(
    ["fuzz@example.test", "FUZZ@Example.Test", " fuzz@example.test ", "fuzz@example.test\x00"])


@pytest.fixture
def login_user(app):
    user = make_user("fuzz@example.test")
    make_enrollment(user, "sms", phone=E164)
    return user


@FUZZ
@given(
    method=st.sampled_from(["POST", "POST", "POST", "POST", "PUT", "DELETE", "PATCH"]),
    email=st.one_of(FIELD, KNOWN_EMAILS),
    password=FIELD,
    extra=EXTRA,
    encoding=ENCODING,
    raw=RAW_BODY,
    htmx=st.booleans(),
)
@example(method="POST", email="fuzz@example.test", password="x" * 100_000, extra=[], encoding="urlencoded",
         raw=b"", htmx=False)
@example(method="POST", email="a\x00@example.test", password="\x00", extra=[], encoding="multipart", raw=b"",
         htmx=True)
@example(method="POST", email=None, password=None, extra=[], encoding="raw", raw=b"email=\xff\xfe&password=\x80",
         htmx=False)
def test_login_survives_any_input(client, login_user, method, email, password, extra, encoding, raw, htmx):
    """Does any Log In request give a 500, sign anyone in, or write more than the expected audit row?"""
    before = row_counts()
    hash_before = fresh(User, login_user.id).password_hash
    pairs = form_pairs(extra, email=email, password=password)
    response = send(client, method, "/login", pairs, encoding=encoding, raw=raw,
                    headers={"HX-Request": "true"} if htmx else None)
    assert_handled(response)
    if method == "POST":
        assert response.status_code in (400, 401, 413)  # 413: over MAX_CONTENT_LENGTH, refused unread
        if encoding != "raw" and repeats(pairs):
            assert response.status_code in (400, 413)  # a field sent twice: refused before Log In is tried
    else:
        assert response.status_code == 405
    assert row_counts() == before
    user = fresh(User, login_user.id)
    assert user.password_hash == hash_before and user.active and user.mfa.phone_e164 == E164
    assert_logged_out(client)


# -- the code step of Log In -------------------------------------------------------------

DIGITISH = st.from_regex(r"\A[0-9 \t-]{0,14}\Z")
UNICODE_DIGITS = st.text(alphabet=st.characters(categories=["Nd"]), min_size=6, max_size=6)
SIX = st.from_regex(r"\A[0-9]{6}\Z")
CODE = st.one_of(VALUE, DIGITISH, UNICODE_DIGITS, SIX,
                 st.sampled_from(["١٢٣٤٥٦", "１２３４５６", "12345６", "123 456\n"]))


@pytest.fixture
def pending_login(client, auth, outbox, clock):
    """An SMS user who gave the right password and now faces the code page."""
    user = make_user("code-fuzz@example.test")
    make_enrollment(user, "sms", phone=E164)
    response = auth.login("code-fuzz@example.test", PASSWORD)
    assert response.headers["Location"] == "/login/code"
    return SimpleNamespace(user=user, code=last_code(outbox, E164, "sms"))


@FUZZ
@given(code=st.one_of(st.none(), CODE, st.lists(CODE, min_size=2, max_size=3)), extra=EXTRA,
       encoding=ENCODING, raw=RAW_BODY, htmx=st.booleans())
@example(code="١٢٣٤٥٦", extra=[], encoding="urlencoded", raw=b"", htmx=False)
@example(code="1" * 33, extra=[], encoding="urlencoded", raw=b"", htmx=True)
def test_code_step_survives_any_input(client, pending_login, code, extra, encoding, raw, htmx):
    """Does any code submission give a 500 or a login; does a malformed one cost an attempt?"""
    sent = first(code) if encoding != "raw" else parsed_field(raw, "code")
    assume(not (isinstance(sent, str) and re.sub(r"[ \t-]", "", sent) == pending_login.code))
    assume(pending_login.code.encode() not in raw)
    user_id = pending_login.user.id
    before = row_counts()
    user = fresh(User, user_id)
    counter_before = (user.mfa_failed_count, user.mfa_locked_until)
    attempts_before = db.session.scalars(select(MfaCode.attempts).where(MfaCode.user_id == user_id)).all()
    db.session.rollback()

    pairs = form_pairs(extra, code=code)
    response = send(client, "POST", "/login/code", pairs, encoding=encoding, raw=raw,
                    headers=CODE_HTMX if htmx else None)
    assert_handled(response)
    if encoding != "raw" and repeats(pairs):
        assert response.status_code in (400, 413)  # a field sent twice: refused before any code is compared
    if is_wellformed_code(sent):
        assert response.status_code in (400, 413, 429)  # 413: over MAX_CONTENT_LENGTH, refused unread
    else:
        # Checklist 14: refused as malformed, and it costs neither the code nor the account a try.
        assert response.status_code in (400, 413)  # 413: over MAX_CONTENT_LENGTH, refused unread
        user = fresh(User, user_id)
        assert (user.mfa_failed_count, user.mfa_locked_until) == counter_before
        assert db.session.scalars(select(MfaCode.attempts).where(MfaCode.user_id == user_id)).all() == attempts_before
        db.session.rollback()
    assert row_counts() == before
    assert fresh(User, user_id).mfa.phone_e164 == E164
    assert_logged_out(client)
