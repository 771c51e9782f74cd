"""Fuzzing Users | invite, as a practice admin: can any input give a 500, or a refused invitation
create or send anything?

The strategies, helpers and what counts as a write are in fuzz_helpers.py.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import select

from portal.extensions import db
from portal.models import Invitation, OutboxMessage
from tests.factories import PASSWORD, make_user
from tests.functional.fuzz_helpers import (
    ENCODING,
    EXTRA,
    FIELD,
    FUZZ,
    RAW_BODY,
    assert_handled,
    count,
    form_pairs,
    repeats,
    row_counts,
    send,
)

# -- Users | invite, as a practice admin -------------------------------------------------


@pytest.fixture
def admin_session(client, auth):
    admin = make_user("fuzz-admin@example.test", role="practice_admin")
    make_user("taken@example.test", practice=admin.practice)
    assert auth.login("fuzz-admin@example.test", PASSWORD).status_code == 303
    return admin


INVITE_EMAIL = st.one_of(FIELD, st.emails(),
                         st.sampled_from(["taken@example.test", "TAKEN@example.test", "fuzz-admin@example.test",
                                          "ü.ser@example.test", "a@b", "x@localhost", "nul\x00@example.test"]))
ROLE = st.one_of(FIELD, st.sampled_from(["clinician", "staff", "practice_admin", "support"]))


@FUZZ
@given(email=INVITE_EMAIL, display_name=st.one_of(FIELD, st.just("New Person")), role=ROLE, extra=EXTRA,
       encoding=ENCODING, raw=RAW_BODY)
@example(email="nul.name@example.test", display_name="Ada\x00Lovelace", role="staff", extra=[],
         encoding="urlencoded", raw=b"")
@example(email="long.name@example.test", display_name="\u0130" * 120, role="staff", extra=[],
         encoding="urlencoded", raw=b"")
def test_invitation_form_survives_any_input(client, admin_session, email, display_name, role, extra, encoding, raw):
    """Does any invitation request give a 500, and does a refused one create or send nothing?"""
    before, mail_before = row_counts(), count(OutboxMessage)
    pairs = form_pairs(extra, email=email, display_name=display_name, role=role)
    response = send(client, "POST", "/practice/invitations", pairs, encoding=encoding, raw=raw)
    assert_handled(response)
    if encoding != "raw" and repeats(pairs):
        assert response.status_code in (400, 413)  # a field sent twice: refused before anything is invited
    after = row_counts()
    if response.status_code == 303:
        assert after == {**before, "invitations": before["invitations"] + 1}
        assert count(OutboxMessage) == mail_before + 1
        invited = db.session.scalar(select(Invitation).order_by(Invitation.id.desc()).limit(1))
        assert invited.role in ("clinician", "staff", "practice_admin")
        assert invited.practice_id == admin_session.practice_id
        db.session.rollback()
    else:
        assert response.status_code in (400, 413)  # 413: over MAX_CONTENT_LENGTH, refused unread
        assert after == before
        assert count(OutboxMessage) == mail_before
