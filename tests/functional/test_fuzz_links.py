"""Fuzzing the links in emails (invitations and password resets): can any token give a 500, a
redirect elsewhere, or use up or change anything?

The strategies, helpers and what counts as a write are in fuzz_helpers.py.
"""

from __future__ import annotations

from types import SimpleNamespace
from urllib.parse import quote

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from sqlalchemy import select

from portal.accounts import invitations, password_reset, tokens
from portal.accounts.errors import AccountError
from portal.clock import now as utcnow
from portal.extensions import db
from portal.models import Invitation, PasswordReset, User
from tests.factories import make_user
from tests.functional.fuzz_helpers import (
    FIELD,
    FUZZ,
    HUGE,
    TEXT,
    assert_handled,
    form_pairs,
    mutations,
    row_counts,
    send,
)

# -- links in emails: invitations and password resets ----------------------------------


@pytest.fixture
def links(app, outbox):
    admin = make_user("token-admin@example.test", role="practice_admin")
    invitations.invite(admin=admin, email="invitee@example.test", display_name="Invitee", role="staff", now=utcnow())
    member = make_user("reset-me@example.test")
    password_reset.request_reset("reset-me@example.test", now=utcnow())
    return SimpleNamespace(
        invitation=outbox.link("invitee@example.test").rsplit("/", 1)[1],
        reset=outbox.link("reset-me@example.test").rsplit("/", 1)[1],
        member_id=member.id,
        member_hash=member.password_hash,
    )


def same_link(route: str, token: str, valid: str) -> bool:
    """True when `token` is the real link in another spelling.

    itsdangerous drops characters outside the base64url alphabet (and unused padding bits) in
    the signature, so a valid link has many accepted spellings. They carry the same signed
    record id and nonce, so they are the real link, not a forgery, and are left out here.
    """
    purpose = invitations.PURPOSE if route == "/invitations/" else password_reset.PURPOSE
    try:
        return tokens.unsign(purpose, token) == tokens.unsign(purpose, valid)
    except AccountError:
        return False



@FUZZ
@given(data=st.data())
def test_email_links_survive_any_token(client, links, data):
    """Does any token in an invitation or reset link give a 500, or use up or change anything?"""
    route, valid = data.draw(st.sampled_from([("/invitations/", links.invitation),
                                              ("/reset-password/", links.reset)]))
    token = data.draw(st.one_of(TEXT, HUGE, mutations(valid), st.sampled_from([links.invitation, links.reset])),
                      label="token")
    assume(not same_link(route, token, valid))
    method = data.draw(st.sampled_from(["GET", "POST"]), label="method")
    new_password = data.draw(st.one_of(FIELD, st.just("a long enough passphrase")), label="password")
    pairs = form_pairs(password=new_password,
                       confirm=data.draw(st.one_of(FIELD, st.just(new_password)), label="confirm"))
    before = row_counts()

    response = send(client, method, route + quote(token, safe=""), pairs,
                    encoding=data.draw(st.sampled_from(["urlencoded", "multipart"]), label="encoding"))
    assert_handled(response)
    assert response.status_code in (400, 404, 413)  # 413: over MAX_CONTENT_LENGTH, refused unread
    assert row_counts() == before
    db.session.expire_all()
    assert db.session.scalar(select(Invitation.accepted_at)) is None
    assert db.session.scalar(select(PasswordReset.used_at)) is None
    member = db.session.get(User, links.member_id)
    assert member.password_hash == links.member_hash and member.session_version == 1
    db.session.rollback()




def test_a_link_token_holding_a_slash_is_not_found(client, links):
    """A token with "/" in it (escaped or not) makes a doubled slash: is it a plain 404, not a
    redirect to some other address?"""
    for route in ("/invitations/", "/reset-password/"):
        for path in (route + quote("/0", safe=""), route + "/" + links.invitation, "/" + route.strip("/") + "//x"):
            response = client.get(path)
            assert response.status_code == 404, (path, response.status_code)
            assert "Location" not in response.headers
