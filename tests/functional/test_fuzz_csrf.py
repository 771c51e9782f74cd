"""Fuzzing CSRF protection, on as in production: is every missing, foreign or tampered token
refused with nothing written, and does the page's own token pass?

The strategies, helpers and what counts as a write are in fuzz_helpers.py.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, OutboxMessage, User
from tests.conftest import token_from
from tests.factories import PASSWORD, make_user
from tests.functional.fuzz_helpers import (
    CSRF_MESSAGE,
    FUZZ,
    TEXT,
    assert_handled,
    assert_logged_out,
    count,
    mutations,
    pending_rows,
    row_counts,
    send,
)

# -- with CSRF protection on, as in production --------------------------------------------



@pytest.fixture
def csrf_world(make_app, app):
    """One anonymous visitor and one logged-in practice admin (password freshly confirmed)."""
    csrf_app = make_app(WTF_CSRF_ENABLED=True)
    make_user("csrf-visitor@example.test")
    admin = make_user("csrf-admin@example.test", role="practice_admin")
    visitor = csrf_app.test_client()
    visitor_token = token_from(visitor.get("/login"))
    logged_in = csrf_app.test_client()
    response = logged_in.post("/login", data={"email": "csrf-admin@example.test", "password": PASSWORD,
                                              "csrf_token": token_from(logged_in.get("/login"))})
    assert response.status_code == 303
    page_token = token_from(logged_in.get("/account/security"))
    response = logged_in.post("/account/security/confirm-password",
                              data={"password": PASSWORD, "csrf_token": page_token})
    assert response.status_code == 303
    stranger = csrf_app.test_client()
    return SimpleNamespace(
        visitor=visitor, visitor_token=visitor_token, admin=admin, logged_in=logged_in,
        admin_token=token_from(logged_in.get("/practice/users")), stranger_token=token_from(stranger.get("/login")),
        secret_key=csrf_app.config["SECRET_KEY"],
    )


def snapshot():
    visitor = db.session.scalar(select(User).where(User.email == "csrf-visitor@example.test"))
    state = (row_counts(), count(AuditEvent), count(OutboxMessage), pending_rows(),
             visitor.failed_password_count if visitor else None)
    db.session.rollback()
    return state


TARGETS = {
    # name: (who, path, fields that would succeed with a good token)
    "login": ("visitor", "/login", {"email": "csrf-visitor@example.test", "password": PASSWORD}),
    "confirm": ("admin", "/account/security/confirm-password", {"password": "not the password"}),
    "phone": ("admin", "/account/security/phone", {"phone": "(202) 555-0143"}),
    "invite": ("admin", "/practice/invitations",
               {"email": "csrf-new@example.test", "display_name": "New", "role": "staff"}),
    "logout": ("admin", "/logout", {}),
}
def same_csrf_token(secret_key: str, token, valid: str) -> bool:
    """True when `token` is the session's own token in another spelling (Flask-WTF signs with
    itsdangerous, which ignores stray characters in the signature: see same_link in
    test_fuzz_links.py)."""
    if token is None:
        return False
    serializer = URLSafeTimedSerializer(secret_key, salt="wtf-csrf-token")
    try:
        return serializer.loads(token) == serializer.loads(valid)
    except BadData:
        return False


ASCII_TOKEN = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=120)


@FUZZ
@given(data=st.data())
def test_bad_csrf_tokens_are_refused_and_write_nothing(csrf_world, data):
    """With CSRF on, does every missing, foreign or tampered token get a 400 and change nothing?"""
    target = data.draw(st.sampled_from(sorted(TARGETS)), label="target")
    who, path, fields = TARGETS[target]
    client, valid = ((csrf_world.visitor, csrf_world.visitor_token) if who == "visitor"
                     else (csrf_world.logged_in, csrf_world.admin_token))
    other = csrf_world.admin_token if who == "visitor" else csrf_world.visitor_token
    token = data.draw(st.one_of(st.none(), TEXT, ASCII_TOKEN, mutations(valid),
                                st.sampled_from([csrf_world.stranger_token, other, ""])), label="token")
    assume(not same_csrf_token(csrf_world.secret_key, token, valid))
    where = data.draw(st.sampled_from(["form", "header", "both"]) if token is not None else st.just("none"),
                      label="where")
    if where == "header":
        assume(re.fullmatch(r"[\x21-\x7e]*", token) is not None)  # what a header can carry
    pairs = list(fields.items())
    if where in ("form", "both"):
        pairs.append(("csrf_token", token))
    headers = {"X-CSRFToken": token} if where in ("header",) else {}
    if where == "both":
        headers = {"HX-Request": "true", "X-CSRFToken": "x" + (token if re.fullmatch(r"[\x21-\x7e]*", token) else "")}
    before = snapshot()

    response = send(client, "POST", path, pairs, headers=headers or None)
    body = assert_handled(response)
    if response.status_code == 401:
        # Allowed for an anonymous HTMX request only: sent to Log In (checklist 46), never served.
        assert who == "visitor" and "HX-Request" in headers
        assert response.headers["HX-Redirect"].startswith("/login")
    else:
        assert response.status_code == 400
        assert CSRF_MESSAGE in body
    assert snapshot() == before
    if who == "visitor":
        assert_logged_out(client)
    else:
        assert client.get("/").status_code == 200  # still logged in: no forced logout either


def test_good_csrf_tokens_pass(csrf_world):
    """Do the same requests go through with the page's token (so the 400s above mean CSRF)?"""
    client, token = csrf_world.logged_in, csrf_world.admin_token
    fields = TARGETS["invite"][2]
    assert client.post("/practice/invitations", data={**fields, "csrf_token": token}).status_code == 303
    assert client.post("/account/security/phone", data={**TARGETS["phone"][2], "csrf_token": token}).status_code == 303
    response = csrf_world.visitor.post("/login", data={**TARGETS["login"][2], "csrf_token": csrf_world.visitor_token})
    assert response.status_code == 303 and response.headers["Location"] == "/"
