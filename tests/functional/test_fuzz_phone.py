"""Fuzzing the phone number form (Account Settings | Security): can any input give a 500, or a
refused number change the pending one or send a text?

The strategies, helpers and what counts as a write are in fuzz_helpers.py.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from portal.models import OutboxMessage, User
from tests.factories import PASSWORD, make_user
from tests.functional.fuzz_helpers import (
    ENCODING,
    EXTRA,
    FUZZ,
    PANEL_HTMX,
    RAW_BODY,
    VALUE,
    assert_handled,
    count,
    form_pairs,
    fresh,
    pending_rows,
    repeats,
    row_counts,
    send,
)
from tests.functional.mfa_helpers import confirm_password

# -- Account Settings | Security: the phone number --------------------------------------

US_LIKE = st.from_regex(r"\A\+?1?[ .(-]{0,2}[2-9][0-9]{2}[ .)-]{0,2}[2-9][0-9]{2}[ .-]?[0-9]{4}\Z")
PHONE = st.one_of(
    VALUE,
    US_LIKE,
    st.sampled_from([
        "(202) 555-0188",      # a valid US number
        "+1 416 555 0143",     # Canada
        "+1 876 555 0143",     # Jamaica
        "+44 20 7946 0958",    # UK
        "+1 800 555 0143",     # toll-free
        "２０２５５５０１８８",  # full-width digits
        "202555014\x003",
    ]),
)



@pytest.fixture
def security_session(app, client, auth, clock):
    """A logged-in user with a fresh password confirmation who has saved numbers up to the
    send limit, so a pending number and live code exist and, with the clock held still, every
    further valid number is refused with a 429 (the refusal path must save nothing).
    """
    user = make_user("phone-fuzz@example.test")
    assert auth.login("phone-fuzz@example.test", PASSWORD).headers["Location"] == "/"
    assert confirm_password(client, PASSWORD).status_code == 303
    statuses = []
    for n in range(app.config["MFA_CODES_PER_HOUR"]):
        statuses.append(client.post("/account/security/phone", data={"phone": f"(202) 555-01{10 + n}"}).status_code)
        if statuses[-1] != 303:
            break
    assert statuses[0] == 303 and set(statuses) <= {303, 429}
    return user


@FUZZ
@given(phone=st.one_of(st.none(), PHONE, st.lists(PHONE, min_size=2, max_size=3)), extra=EXTRA,
       encoding=ENCODING, raw=RAW_BODY, htmx=st.booleans())
@example(phone="(202) 555-0188", extra=[], encoding="urlencoded", raw=b"", htmx=False)
def test_phone_number_form_survives_any_input(client, security_session, phone, extra, encoding, raw, htmx):
    """Does any phone number give a 500, and does a refused one leave the pending number as it was?"""
    before, pending_before, texts_before = row_counts(), pending_rows(), count(OutboxMessage)
    pairs = form_pairs(extra, phone=phone)
    response = send(client, "POST", "/account/security/phone", pairs, encoding=encoding, raw=raw,
                    headers=PANEL_HTMX if htmx else None)
    assert_handled(response)
    if encoding != "raw" and repeats(pairs):
        assert response.status_code in (400, 413)  # a field sent twice: refused before the number is read
    if response.status_code >= 400:
        # The service promises: "On a failure nothing is saved and any previous pending
        # number stays as it was." No text is sent either.
        assert response.status_code in (400, 413, 429)  # 413: over MAX_CONTENT_LENGTH, refused unread
        assert pending_rows() == pending_before
        assert row_counts() == before
        assert count(OutboxMessage) == texts_before
    else:
        assert response.status_code in (200, 204, 303)
        assert row_counts()["mfa_enrollments"] == before["mfa_enrollments"]
    user = fresh(User, security_session.id)
    assert user.mfa is None  # a number is never active before its code is entered (checklist 27)
