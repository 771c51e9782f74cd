"""Fuzzing the shape of every form: does a file part (multipart upload), a field sent more
than once or a JSON body get the usual 400 page, and never a 500 or a write, on every POST endpoint of the
app, for every role?

The endpoints come from `app.url_map` (ids and link tokens substituted with real ones), so a
new POST route is covered the day it is added. Each role has its own logged-in client: a
visitor, someone at the code step of Log In, a clinician, staff, a practice admin (password
freshly confirmed) and support staff (confirmed for support work). The support area answers
404 to everyone but support staff, malformed or not; every other route answers 400. "Nothing
written" means every row of every table is the same after the request as before.

The strategies and helpers are in fuzz_helpers.py.
"""

from __future__ import annotations

import json
import re
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.accounts import invitations, lost_access, password_reset
from portal.enforcement import requirement
from tests.factories import PASSWORD, make_enrollment, make_practice, make_user
from tests.functional.fuzz_helpers import CSRF_MESSAGE, FUZZ, TEXT, assert_handled, database_state, multipart
from tests.functional.mfa_helpers import confirm_password, totp_now

BAD_REQUEST = "The request could not be understood."

# What each POST endpoint's page sends when filled in well; a route missing here is sent
# with a stand-in field (and the sweep below says which).
FIELDS = {
    "auth.login": {"email": "clinician@shape.test", "password": PASSWORD},
    "auth.verify_code": {"code": "123456"},
    "auth.resend_code": {},
    "auth.logout": {},
    "auth.logout_everywhere": {},
    "auth.forgot_password": {"email": "clinician@shape.test"},
    "auth.reset_password": {"password": "a long enough passphrase", "confirm": "a long enough passphrase"},
    "auth.accept_invitation": {"password": "a long enough passphrase", "confirm": "a long enough passphrase"},
    "security.confirm_password": {"password": PASSWORD},
    "security.choose_device": {"device": "sms"},
    "security.save_phone_number": {"phone": "(202) 555-0188"},
    "security.resend_enrollment_code": {},
    "security.verify_device": {"code": "123456"},
    "practice.request_requirement": {"note": "Please require it."},
    "practice.invite_user": {"email": "someone.new@shape.test", "display_name": "Someone New", "role": "staff"},
    "practice.resend_invitation": {},
    "practice.revoke_invitation": {},
    "support.confirm": {"password": PASSWORD, "code": "123456"},
    "support.clear_mfa": {"reason": "Lost phone", "ticket": "T-1"},
    "support.set_requirement": {"required": "on", "when": "now", "reason": "Policy"},
    "support.decide_request": {"note": "Approved.", "approve": "Approve"},
    "support.unlock_user": {"reason": "Verified by phone"},
    "auth.lost_access": {},
    "support.clear_lost_access": {"reason": "Lost phone", "ticket": "T-2"},
    "support.decline_lost_access": {"note": "Call us first."},
}
ROLES = ("visitor", "code step", "clinician", "staff", "practice admin", "support")
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture
def shape_world(app, outbox, clock):
    """Every role logged in on its own client, and real ids and link tokens for every route."""
    practice = make_practice("Shape Clinic")
    admin = make_user("admin@shape.test", role="practice_admin", practice=practice)
    make_user("clinician@shape.test", practice=practice)
    make_user("staff@shape.test", role="staff", practice=practice)
    member = make_user("member@shape.test", practice=practice)
    make_enrollment(member, "sms")
    waiting = make_user("waiting@shape.test", practice=practice)
    make_enrollment(waiting, "sms", phone="+12025550177")
    support = make_user("support@shape.test", role="support")
    secret = make_enrollment(support, "totp")
    request = requirement.make_request(admin, require=True, note="Please", now=clock.now())
    invitation = invitations.invite(admin=admin, email="invitee@shape.test", display_name="Invitee", role="staff",
                                    now=clock.now())
    password_reset.request_reset("clinician@shape.test", now=clock.now())
    lost_access.request_clear(member, now=clock.now())
    lost = lost_access.open_request_of(member.id)

    clients = {role: app.test_client() for role in ROLES}

    def log_in(role, email):
        response = clients[role].post("/login", data={"email": email, "password": PASSWORD})
        assert response.status_code == 303, (role, response.status_code)
        return response

    assert log_in("code step", "waiting@shape.test").headers["Location"] == "/login/code"
    log_in("clinician", "clinician@shape.test")
    log_in("staff", "staff@shape.test")
    log_in("practice admin", "admin@shape.test")
    assert confirm_password(clients["practice admin"], PASSWORD).status_code == 303
    log_in("support", "support@shape.test")
    assert clients["support"].post("/login/code", data={"code": totp_now(secret, clock)}).status_code == 303
    clock.advance(seconds=30)
    response = clients["support"].post("/support/confirm", data={"password": PASSWORD, "code": totp_now(secret, clock)})
    assert response.status_code == 303

    values = {
        "user_id": member.id, "practice_id": practice.id, "request_id": request.id, "invitation_id": invitation.id,
        ("support.clear_lost_access", "request_id"): lost.id, ("support.decline_lost_access", "request_id"): lost.id,
        ("auth.accept_invitation", "token"): outbox.link("invitee@shape.test").rsplit("/", 1)[1],
        ("auth.reset_password", "token"): outbox.link("clinician@shape.test").rsplit("/", 1)[1],
        ("dev.answer_vip", "service"): "ManagementService_1_10",  # the development VIP stand-in
    }
    outbox.queue.drain()  # nothing left to run in the background while the test compares states
    return SimpleNamespace(clients=clients, targets=post_targets(app, values))


def post_targets(app, values) -> list[tuple[str, str, dict]]:
    """(endpoint, path, good fields) for every rule that takes a body, arguments filled in."""
    targets = []
    for rule in app.url_map.iter_rules():
        if not rule.methods & BODY_METHODS:
            continue
        arguments = {name: values.get((rule.endpoint, name), values.get(name)) for name in rule.arguments}
        assert None not in arguments.values(), f"{rule.rule}: give this argument a real value in shape_world"
        path = app.url_map.bind("localhost").build(rule.endpoint, arguments)
        targets.append((rule.endpoint, path, FIELDS.get(rule.endpoint, {"field": "value"})))
    assert {endpoint for endpoint, _, _ in targets} >= set(FIELDS), "a POST route went missing"
    return sorted(targets)


def expected_status(role: str, endpoint: str) -> int:
    """The support area does not admit it exists to anyone else (404); every other route
    refuses the form (400) before asking who is there."""
    return 404 if endpoint.startswith("support.") and role != "support" else 400


def send_body(client, path, body: bytes, content_type: str, htmx: bool):
    headers = {"HX-Request": "true", "HX-Target": "main"} if htmx else {}
    return client.post(path, data=body, content_type=content_type, headers=headers)


def assert_refused(response, role: str, endpoint: str, htmx: bool) -> None:
    body = assert_handled(response)
    assert response.status_code == expected_status(role, endpoint), (role, endpoint, response.status_code, body[:300])
    if response.status_code == 400:
        assert BAD_REQUEST in body
        assert ("<html" in body) is not htmx  # the fragment for an HTMX swap, else the page


# -- every endpoint, every role, once each ---------------------------------------------------


def test_every_post_endpoint_refuses_file_parts_and_repeated_fields_for_every_role(shape_world):
    """Does each POST endpoint, for each role, answer a file part, a repeated field, a
    repeated CSRF token and a JSON body (whatever it holds) with the 400 page (404 in the
    support area for non-support), plain and HTMX, with nothing written?"""
    before = database_state()
    for endpoint, path, fields in shape_world.targets:
        good = list(fields.items()) or [("csrf_token", "token")]
        name = good[0][0]
        shapes = {
            "file part": multipart([*good[1:], (name, "notes.txt", b"%PDF-1.4 \x00\xff", "application/pdf")]),
            "file part beside the fields": multipart([*good, ("attachment", "a.png", b"\x89PNG", "image/png")]),
            "repeated field, multipart": multipart([*good, (name, "again")]),
            "repeated field": (urlencode([*good, (name, "again")]).encode(), "application/x-www-form-urlencoded"),
            "repeated csrf_token": (urlencode([*good, ("csrf_token", "a"), ("csrf_token", "b")]).encode(),
                                    "application/x-www-form-urlencoded"),
            "JSON": (json.dumps(dict(good)).encode(), "application/json"),
            "JSON of numbers, lists and objects": (json.dumps(
                {name: 123456, **{key: [value, value] for key, value in good[1:]}, "x": {"a": True}}).encode(),
                "application/json; charset=utf-8"),
            "JSON that is not an object": (b"[1, 2]", "application/vnd.portal+json"),
        }
        for role in ROLES:
            for shape, (body, content_type) in shapes.items():
                for htmx in (False, True):
                    response = send_body(shape_world.clients[role], path, body, content_type, htmx)
                    try:
                        assert_refused(response, role, endpoint, htmx)
                    except AssertionError as error:
                        raise AssertionError(f"{role} {shape} {'HTMX ' if htmx else ''}{path}: {error}") from None
    assert database_state() == before


# -- the same with any names, values, files and encodings -----------------------------------

SAFE_NAME = st.text(alphabet=st.characters(categories=["L", "N"], include_characters="_-[]."), min_size=1,
                    max_size=16)
FILENAME = st.one_of(st.text(max_size=40), st.sampled_from(["", "a.txt", "../../etc/passwd", "x.php", "\x00.png"]))
CONTENT_TYPE = st.sampled_from(["application/octet-stream", "text/plain", "image/png", "text/html; charset=utf-8",
                                "application/x-www-form-urlencoded", "multipart/form-data"])
SHORT = st.one_of(TEXT, st.sampled_from(["", "\x00", "\r\n", "--", "' OR '1'='1", "<script>"]))


@FUZZ
@given(data=st.data())
def test_file_parts_and_repeated_fields_are_refused_whatever_they_hold(shape_world, data):
    """Do file parts and repeated fields of any name, value, file name, content type and
    position get the 400 page (404 in the support area for others), with nothing written?"""
    role = data.draw(st.sampled_from(ROLES), label="role")
    endpoint, path, fields = data.draw(st.sampled_from(shape_world.targets), label="target")
    good = [(name, value) for name, value in fields.items() if data.draw(st.booleans(), label=f"send {name}")]
    names = st.one_of(st.sampled_from([*fields, "csrf_token"]), SAFE_NAME)
    files = data.draw(st.lists(st.tuples(names, FILENAME, st.binary(max_size=2_000), CONTENT_TYPE), max_size=3),
                      label="file parts")
    repeated = data.draw(st.one_of(st.none(), st.tuples(names, st.lists(SHORT, min_size=2, max_size=3))),
                         label="repeated field")
    if not files and repeated is None:
        files = [("csrf_token", "token.txt", b"x", "text/plain")]
    parts = list(good)
    if repeated:
        parts = [(name, value) for name, value in parts if name != repeated[0]]
        parts += [(repeated[0], value) for value in repeated[1]]
    parts = data.draw(st.permutations(parts), label="order") if parts else []
    for file in files:
        parts.insert(data.draw(st.integers(0, len(parts)), label="file position"), file)
    if files or data.draw(st.booleans(), label="multipart"):
        body, content_type = multipart(parts)
    else:
        body, content_type = urlencode(parts).encode(), "application/x-www-form-urlencoded"
    htmx = data.draw(st.booleans(), label="htmx")
    before = database_state()

    response = send_body(shape_world.clients[role], path, body, content_type, htmx)
    assert_refused(response, role, endpoint, htmx)
    assert database_state() == before


# -- with CSRF protection on, as in production ---------------------------------------------


def test_a_repeated_or_attached_csrf_token_is_refused_before_csrf_protection(make_app, app):
    """With CSRF on, does a repeated token (even the right one twice), a token sent as a file,
    or a JSON body with the right token in the header get this 400, before Flask-WTF reads it,
    while one right token still passes?"""
    csrf_app = make_app(WTF_CSRF_ENABLED=True)
    make_user("csrf-shape@shape.test")
    client = csrf_app.test_client()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                      client.get("/login").get_data(as_text=True)).group(1)
    fields = [("email", "csrf-shape@shape.test"), ("password", PASSWORD)]
    before = database_state()
    bodies = [
        (urlencode([*fields, ("csrf_token", token), ("csrf_token", token)]).encode(),
         "application/x-www-form-urlencoded"),
        (urlencode([*fields, ("csrf_token", token), ("csrf_token", "forged")]).encode(),
         "application/x-www-form-urlencoded"),
        multipart([*fields, ("csrf_token", "forged"), ("csrf_token", token)]),
        multipart([*fields, ("csrf_token", "token.txt", token.encode(), "text/plain")]),
        multipart([*fields, ("csrf_token", token), ("csrf_token", "token.txt", token.encode(), "text/plain")]),
    ]
    for body, content_type in bodies:
        response = client.post("/login", data=body, content_type=content_type)
        page = assert_handled(response)
        assert response.status_code == 400 and BAD_REQUEST in page and CSRF_MESSAGE not in page
    for json_body in ({"email": 123, "password": PASSWORD}, {"email": "csrf-shape@shape.test", "password": PASSWORD}):
        response = client.post("/login", json=json_body, headers={"X-CSRFToken": token})  # the token as htmx sends it
        assert response.status_code == 400 and BAD_REQUEST in assert_handled(response)
    assert database_state() == before
    response = client.post("/login", data={**dict(fields), "csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"] == "/"
