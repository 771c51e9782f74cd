"""Fuzzing what an attacker can reach: can any input give a 500, a traceback or a stray write?

Hypothesis drives the public forms (Log In, the code step, links in emails) and the forms of a
logged-in user (phone number, invitations) with any Unicode text (NUL included), values up
to ~100 KB, missing and repeated fields, raw bytes, multipart bodies and wrong methods.

Function-scoped fixtures run once per test, not per example, so the database carries over
between examples: each property compares the state just before and just after its own
request. Expected side effects of a refused Log In (an audit row, a higher
users.failed_password_count, a lock and its notice) are not counted as writes.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from urllib.parse import parse_qsl, quote, urlencode

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from portal.accounts import invitations, password_reset, tokens
from portal.accounts.errors import AccountError
from portal.extensions import db
from portal.models import (
    AuditEvent,
    Invitation,
    MfaCode,
    MfaEnrollment,
    MfaPendingEnrollment,
    OutboxMessage,
    PasswordReset,
    User,
)
from portal.models.base import utcnow
from tests.factories import PASSWORD, make_enrollment, make_user
from tests.functional.mfa_helpers import confirm_password, last_code

# database=None: no .hypothesis/ directory in the project; failures print their example.
FUZZ = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

E164 = "+12025550143"
CODE_HTMX = {"HX-Request": "true", "HX-Target": "code-step"}
PANEL_HTMX = {"HX-Request": "true", "HX-Target": "security-panel"}
CSRF_MESSAGE = "This form has expired or was not sent from the portal."

# Any Unicode text except lone surrogates (not encodable), NUL and control characters included.
TEXT = st.text()
# ~1 KB to ~100 KB: a short chunk repeated (multi-byte characters make the body up to ~1 MB).
HUGE = st.builds(
    lambda chunk, size: (chunk * (size // len(chunk) + 1))[:size],
    st.text(min_size=1, max_size=8),
    st.integers(min_value=1_000, max_value=100_000),
)
VALUE = st.one_of(TEXT, HUGE, st.sampled_from(["", " ", "\x00", "\r\n", "%00", "' OR '1'='1", "<script>"]))
# None leaves the field out; a list sends it several times (the form reads the first).
FIELD = st.one_of(st.none(), VALUE, st.lists(VALUE, min_size=2, max_size=3))
EXTRA = st.lists(st.tuples(TEXT, TEXT), max_size=2)
ENCODING = st.sampled_from(["urlencoded", "urlencoded", "multipart", "raw"])
RAW_BODY = st.binary(max_size=2_000)

TABLES = {
    "users": User,
    "invitations": Invitation,
    "mfa_enrollments": MfaEnrollment,
    "mfa_pending_enrollments": MfaPendingEnrollment,
    "mfa_codes": MfaCode,
}


# -- helpers ------------------------------------------------------------------------------


def form_pairs(extra=(), **fields) -> list[tuple[str, str]]:
    """The fields as (name, value) pairs: None leaves a field out, a list repeats it."""
    pairs = []
    for name, value in fields.items():
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            pairs.append((name, item))
    return pairs + list(extra)


def first(value):
    """What the form sees for a field: the first value sent, or None."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def parsed_field(raw: bytes, name: str):
    """The first value of `name` in a raw urlencoded body, as the server parses it."""
    try:
        pairs = parse_qsl(raw.decode(), keep_blank_values=True)
    except ValueError:  # not UTF-8: the server sees an empty form
        return None
    return next((value for key, value in pairs if key == name), None)


def send(client, method: str, path: str, pairs, *, encoding: str = "urlencoded", raw: bytes = b"", headers=None):
    if encoding == "multipart":
        return client.open(path, method=method, data=MultiDict(pairs), content_type="multipart/form-data",
                           headers=headers)
    if encoding == "raw":
        return client.open(path, method=method, data=raw, content_type="application/x-www-form-urlencoded",
                           headers=headers)
    return client.open(path, method=method, data=urlencode(pairs), content_type="application/x-www-form-urlencoded",
                       headers=headers)


def assert_handled(response) -> str:
    """No server error and no stack trace, whatever was sent."""
    body = response.get_data(as_text=True)
    assert response.status_code < 500, (response.status_code, body[:300])
    assert "Traceback" not in body
    return body


def row_counts() -> dict[str, int]:
    counts = {name: db.session.scalar(select(func.count()).select_from(model)) for name, model in TABLES.items()}
    db.session.rollback()  # end the read so the next count sees the app's latest commits
    return counts


def count(model) -> int:
    value = db.session.scalar(select(func.count()).select_from(model))
    db.session.rollback()
    return value


def fresh(model, ident):
    db.session.expire_all()
    return db.session.get(model, ident)


def assert_logged_out(client) -> None:
    response = client.get("/")
    assert response.status_code == 303 and response.headers["Location"].startswith("/login")


def is_wellformed_code(raw) -> bool:
    """The portal's rule (checklist 14): at most 32 characters, then six ASCII digits once
    spaces, tabs and dashes are removed."""
    return isinstance(raw, str) and len(raw) <= 32 and re.fullmatch(r"[0-9]{6}", re.sub(r"[ \t-]", "", raw), re.ASCII) is not None


# -- Log In ---------------------------------------------------------------------------------

KNOWN_EMAILS = st.sampled_from(["fuzz@example.test", "FUZZ@Example.Test", " fuzz@example.test ", "fuzz@example.test\x00"])


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
    response = send(client, method, "/login", form_pairs(extra, email=email, password=password),
                    encoding=encoding, raw=raw, headers={"HX-Request": "true"} if htmx else None)
    assert_handled(response)
    if method == "POST":
        assert response.status_code in (400, 401)
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
CODE = st.one_of(VALUE, DIGITISH, UNICODE_DIGITS, SIX, st.sampled_from(["١٢٣٤٥٦", "１２３４５６", "12345６", "123 456\n"]))


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

    response = send(client, "POST", "/login/code", form_pairs(extra, code=code), encoding=encoding, raw=raw,
                    headers=CODE_HTMX if htmx else None)
    assert_handled(response)
    if is_wellformed_code(sent):
        assert response.status_code in (400, 429)
    else:
        # Checklist 14: refused as malformed, and it costs neither the code nor the account a try.
        assert response.status_code == 400
        user = fresh(User, user_id)
        assert (user.mfa_failed_count, user.mfa_locked_until) == counter_before
        assert db.session.scalars(select(MfaCode.attempts).where(MfaCode.user_id == user_id)).all() == attempts_before
        db.session.rollback()
    assert row_counts() == before
    assert fresh(User, user_id).mfa.phone_e164 == E164
    assert_logged_out(client)


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


def pending_rows():
    rows = db.session.execute(
        select(MfaPendingEnrollment.id, MfaPendingEnrollment.user_id, MfaPendingEnrollment.method,
               MfaPendingEnrollment.phone_e164).order_by(MfaPendingEnrollment.id)
    ).all()
    db.session.rollback()
    return [tuple(row) for row in rows]


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
    response = send(client, "POST", "/account/security/phone", form_pairs(extra, phone=phone), encoding=encoding,
                    raw=raw, headers=PANEL_HTMX if htmx else None)
    assert_handled(response)
    if response.status_code >= 400:
        # The service promises: "On a failure nothing is saved and any previous pending
        # number stays as it was." No text is sent either.
        assert response.status_code in (400, 429)
        assert pending_rows() == pending_before
        assert row_counts() == before
        assert count(OutboxMessage) == texts_before
    else:
        assert response.status_code in (200, 204, 303)
        assert row_counts()["mfa_enrollments"] == before["mfa_enrollments"]
    user = fresh(User, security_session.id)
    assert user.mfa is None  # a number is never active before its code is entered (checklist 27)


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


def mutations(token: str):
    """Near misses of a real token: cut, one character changed, something appended, case flipped."""
    position = st.integers(min_value=0, max_value=len(token) - 1)
    return st.one_of(
        position.map(lambda i: token[:i]),
        st.tuples(position, st.characters()).map(lambda t: token[:t[0]] + t[1] + token[t[0] + 1:]),
        TEXT.map(lambda tail: token + tail),
        st.just(token.swapcase()),
        st.just(".".join(reversed(token.split(".")))),
    )


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
    pairs = form_pairs(password=new_password, confirm=data.draw(st.one_of(FIELD, st.just(new_password)), label="confirm"))
    before = row_counts()

    response = send(client, method, route + quote(token, safe=""), pairs,
                    encoding=data.draw(st.sampled_from(["urlencoded", "multipart"]), label="encoding"))
    assert_handled(response)
    assert response.status_code in (400, 404)
    assert row_counts() == before
    db.session.expire_all()
    assert db.session.scalar(select(Invitation.accepted_at)) is None
    assert db.session.scalar(select(PasswordReset.used_at)) is None
    member = db.session.get(User, links.member_id)
    assert member.password_hash == links.member_hash and member.session_version == 1
    db.session.rollback()


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
    response = send(client, "POST", "/practice/invitations",
                    form_pairs(extra, email=email, display_name=display_name, role=role), encoding=encoding, raw=raw)
    assert_handled(response)
    after = row_counts()
    if response.status_code == 303:
        assert after == {**before, "invitations": before["invitations"] + 1}
        assert count(OutboxMessage) == mail_before + 1
        invited = db.session.scalar(select(Invitation).order_by(Invitation.id.desc()).limit(1))
        assert invited.role in ("clinician", "staff", "practice_admin")
        assert invited.practice_id == admin_session.practice_id
        db.session.rollback()
    else:
        assert response.status_code == 400
        assert after == before
        assert count(OutboxMessage) == mail_before


# -- with CSRF protection on, as in production --------------------------------------------


def token_from(response) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', response.get_data(as_text=True))
    assert match, "page has no CSRF field"
    return match.group(1)


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
    response = logged_in.post("/account/security/confirm-password", data={"password": PASSWORD, "csrf_token": page_token})
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
    "invite": ("admin", "/practice/invitations", {"email": "csrf-new@example.test", "display_name": "New", "role": "staff"}),
    "logout": ("admin", "/logout", {}),
}
def same_csrf_token(secret_key: str, token, valid: str) -> bool:
    """True when `token` is the session's own token in another spelling (Flask-WTF signs with
    itsdangerous, which ignores stray characters in the signature: see same_link)."""
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


def test_a_link_token_holding_a_slash_is_not_found(client, links):
    """A token with "/" in it (escaped or not) makes a doubled slash: is it a plain 404, not a
    redirect to some other address?"""
    for route in ("/invitations/", "/reset-password/"):
        for path in (route + quote("/0", safe=""), route + "/" + links.invitation, "/" + route.strip("/") + "//x"):
            response = client.get(path)
            assert response.status_code == 404, (path, response.status_code)
            assert "Location" not in response.headers
