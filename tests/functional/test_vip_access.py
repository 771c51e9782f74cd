"""Symantec VIP Access under Authenticator Apps, against the VIP stand-in over real HTTP.

The portal talks to tests/vip_server.py on loopback exactly as it would to VIP User Services;
the test knows each credential's secret, so it reads codes the way the VIP Access app shows them.
"""

from __future__ import annotations

import json
import time

import pytest
import requests
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AuditEvent, MfaEnrollment, User
from tests.conftest import _truncate_all
from tests.factories import PASSWORD, make_enrollment, make_user
from tests.functional.mfa_helpers import HTMX, confirm_password, totp_now
from tests.functional.parallel import POOL, clones, fire, log_in
from tests.vip_server import TlsFiles, VipServer, code

CREDENTIAL = "VSST12345678"
MASKED = "VSST••••5678"
EMAIL = "casey@example.test"


@pytest.fixture
def vip():
    with VipServer() as server:
        yield server


@pytest.fixture
def app(make_app, vip):
    """The app under test, with VIP Access pointed at the stand-in (see tests/conftest.py's `app`)."""
    settings = {"VIP_API_BASE_URL": vip.base_url, "VIP_TIMEOUT_SECONDS": 1, "SQLALCHEMY_ENGINE_OPTIONS": POOL}
    server = make_app(**settings)
    inspector = make_app(**settings)
    with inspector.app_context():
        yield server
        db.session.remove()
        _truncate_all()


@pytest.fixture(params=["plain", "htmx"])
def mode(request):
    return request.param


def post(client, mode, url, data=None):
    return client.post(url, data=data or {}, headers=HTMX if mode == "htmx" else {})


@pytest.fixture
def clinician(client, auth, clock):
    user = make_user(EMAIL, display_name="Casey Clinician")
    auth.login(EMAIL, PASSWORD)
    return user


def codes_now(secret: str) -> tuple[str, str]:
    """The code VIP Access showed a moment ago and the one it shows now: two consecutive codes."""
    now = time.time()
    return code(secret, now, -1), code(secret, now, 0)


def next_code(secret: str) -> str:
    """The code the app shows next (the two set-up codes are spent)."""
    return code(secret, time.time(), 1)


def register(client, secret: str, mode: str = "plain", credential: str = CREDENTIAL, codes=None):
    first, second = codes or codes_now(secret)
    return post(client, mode, "/account/security/vip",
                {"credential_id": credential, "first_code": first, "second_code": second})


def enrollment_of(user_id):
    db.session.expire_all()
    return db.session.scalar(select(MfaEnrollment).where(MfaEnrollment.user_id == user_id))


def enrolled_with_vip(client, vip, user) -> str:
    """Set up VIP Access through the Security tab; returns the credential's secret."""
    secret = vip.add_token(CREDENTIAL)
    assert confirm_password(client, PASSWORD).status_code == 303
    response = register(client, secret)
    assert response.status_code == 303, response.get_data(as_text=True)
    assert enrollment_of(user.id).vip_credential_id == CREDENTIAL
    return secret


def failed_codes(user_id) -> int:
    db.session.expire_all()
    return db.session.get(User, user_id).mfa_failed_count


def test_authenticator_apps_offers_two_paths(client, clinician, clock, mode):
    """Under Choose MFA Device: -> Authenticator Apps, are both paths there: "Scan a QR code" and
    "Use Symantec VIP Access", and does the second ask for the Credential ID and two codes?"""
    confirm_password(client, PASSWORD)
    html = client.get("/account/security").get_data(as_text=True)
    assert "or use Symantec VIP Access" in html
    response = post(client, mode, "/account/security/device", {"device": "totp"})
    page = response if mode == "htmx" else client.get(response.headers["Location"])
    html = page.get_data(as_text=True)
    assert "Scan a QR code" in html and "Use Symantec VIP Access" in html and 'id="manual-key"' in html
    qr_steps = html.split('id="path-vip"')[1].split("</form>")[1].split("</ol>")[0]
    assert "Google Authenticator" in qr_steps and "VIP" not in qr_steps  # VIP Access cannot scan it
    response = post(client, mode, "/account/security/device", {"device": "vip"})
    page = response if mode == "htmx" else client.get(response.headers["Location"])
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    for words in ("Credential ID", "Security Code 1", "Security Code 2", "Verify", "four letters and eight digits"):
        assert words in html
    assert 'aria-current="step"' in html.split('id="path-vip"')[0].split('id="path-qr"')[1] or \
        'id="path-vip" aria-current="step"' in html


def test_registration_with_a_credential_id_and_two_codes(app, client, clinician, vip, clock, mode, outbox):
    """Does a valid Credential ID with two consecutive codes turn MFA on as Authenticator Apps
    (VIP Access), bound at VIP, audited with the Credential ID masked?"""
    secret = vip.add_token(CREDENTIAL)
    confirm_password(client, PASSWORD)
    response = register(client, secret, mode, credential=" vsst-1234 5678 ")
    if mode == "htmx":
        assert response.status_code == 204 and response.headers["HX-Redirect"] == "/"
    else:
        assert response.status_code == 303 and response.headers["Location"] == "/"
    enrollment = enrollment_of(clinician.id)
    assert enrollment.method == "totp" and enrollment.vip_credential_id == CREDENTIAL
    assert enrollment.totp_secret is None
    assert vip.stand_in.bound(f"portal-{clinician.id}") == {CREDENTIAL}
    add = [fields for operation, fields in vip.stand_in.calls if operation == "AddCredential"][-1]
    assert add["credentialDetail"] == {"credentialId": CREDENTIAL, "credentialType": "STANDARD_OTP"}
    assert set(add["otpAuthData"]) == {"otp", "otp2"}
    assert EMAIL not in str(vip.stand_in.calls)  # nothing personal goes to VIP
    page = client.get("/account/security").get_data(as_text=True)
    assert f"Symantec VIP Access (Credential ID {MASKED})" in page
    notice = [m for m in outbox.messages(EMAIL, "email") if m.subject == "Multi-factor authentication is on"][-1]
    assert f"using Symantec VIP Access (Credential ID {MASKED})." in notice.body_text
    assert CREDENTIAL not in notice.body_text and CREDENTIAL not in notice.body_html
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.event_type == "mfa.enrolled"))
    assert json.loads(event.detail) == {"method": "vip", "destination": MASKED, "previous_method": None}
    all_details = " ".join(row for row in db.session.scalars(select(AuditEvent.detail)) if row)
    assert CREDENTIAL not in all_details


@pytest.mark.parametrize("raw", ["VSST1234567", "VSS123456789", "12345678VSST", "VSST12345678X", "VSST 1234 ABCD"])
def test_malformed_credential_id_is_refused_without_asking_vip(client, clinician, vip, clock, mode, raw):
    """Is a Credential ID that is not four letters and eight digits refused with a clear message,
    before anything is sent to VIP, and without counting against the account?"""
    secret = vip.add_token(CREDENTIAL)
    confirm_password(client, PASSWORD)
    response = register(client, secret, mode, credential=raw)
    assert response.status_code == 400
    assert "four letters and eight digits, for example VSST12345678" in response.get_data(as_text=True)
    assert vip.stand_in.calls == []
    assert enrollment_of(clinician.id) is None and failed_codes(clinician.id) == 0


def test_wrong_codes_are_refused_and_counted(client, clinician, vip, clock, mode):
    """Are wrong security codes refused with a clear message, counted toward the lock, with
    nothing saved?"""
    vip.add_token(CREDENTIAL)
    confirm_password(client, PASSWORD)
    response = register(client, "", mode, codes=("123456", "654321"))
    assert response.status_code == 400
    assert "Those security codes were not accepted" in response.get_data(as_text=True)
    assert enrollment_of(clinician.id) is None and failed_codes(clinician.id) == 1
    assert vip.stand_in.bound(f"portal-{clinician.id}") == set()


def test_non_consecutive_codes_are_refused(client, clinician, vip, clock, mode):
    """Two right codes that are not consecutive: refused, with the message saying to enter the
    next code as the second one."""
    secret = vip.add_token(CREDENTIAL)
    confirm_password(client, PASSWORD)
    now = time.time()
    response = register(client, secret, mode, codes=(code(secret, now, -2), code(secret, now, 0)))
    assert response.status_code == 400
    assert "wait for the next one, and enter that as the second security code" in response.get_data(as_text=True)
    assert enrollment_of(clinician.id) is None


def test_the_same_code_twice_is_refused_without_asking_vip(client, clinician, vip, clock, mode):
    """The same code in both fields is refused at once (not a pair), and not counted."""
    secret = vip.add_token(CREDENTIAL)
    confirm_password(client, PASSWORD)
    same = code(secret, time.time())
    response = register(client, secret, mode, codes=(same, same))
    assert response.status_code == 400
    assert "The two security codes are the same" in response.get_data(as_text=True)
    assert vip.stand_in.calls == [] and failed_codes(clinician.id) == 0


def test_unknown_credential_id_is_refused(client, clinician, vip, clock, mode):
    """A well-formed Credential ID that VIP does not know: a clear message, nothing saved."""
    confirm_password(client, PASSWORD)
    response = register(client, "", mode, credential="VSMT99999999", codes=("123456", "234567"))
    assert response.status_code == 400
    assert "does not know that Credential ID" in response.get_data(as_text=True)
    assert enrollment_of(clinician.id) is None


def test_log_in_with_a_vip_code_and_replay_refused(app, client, auth, clinician, vip, clock):
    """Does Log In ask for the code, accept the one VIP Access shows, and refuse it a second time?"""
    secret = enrolled_with_vip(client, vip, clinician)
    auth.logout()
    response = auth.login(EMAIL, PASSWORD)
    assert response.headers["Location"] == "/login/code"
    page = client.get("/login/code").get_data(as_text=True)
    assert "Enter the code provided" in page and "Open Symantec VIP Access and enter the 6-digit security code" in page
    current = next_code(secret)
    assert auth.enter_code(current).status_code == 303
    assert client.get("/").status_code == 200
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.event_type == "mfa.code_verified")).all()[-1]
    assert json.loads(event.detail)["method"] == "vip"

    other = app.test_client()
    other.post("/login", data={"email": EMAIL, "password": PASSWORD})
    replay = other.post("/login/code", data={"code": current})
    assert replay.status_code in (400, 401)
    assert "already used" in replay.get_data(as_text=True)
    assert other.get("/").status_code == 303


def test_the_portal_refuses_a_replay_even_if_vip_would_accept_it(app, client, auth, clinician, vip, clock):
    """A service that accepted a code twice (a retried request, a lenient server): does the
    portal's own record of the last accepted code still refuse the replay?"""
    secret = enrolled_with_vip(client, vip, clinician)
    auth.logout()
    vip.stand_in.accept_replays = True
    auth.login(EMAIL, PASSWORD)
    current = next_code(secret)
    assert auth.enter_code(current).status_code == 303
    other = app.test_client()
    other.post("/login", data={"email": EMAIL, "password": PASSWORD})
    replay = other.post("/login/code", data={"code": current})
    assert "already used" in replay.get_data(as_text=True)
    authenticated = [op for op, _fields in vip.stand_in.calls if op == "AuthenticateUser"]
    assert len(authenticated) == 1  # refused before asking VIP again
    assert other.get("/").status_code == 303


def test_wrong_vip_codes_count_toward_the_lock(app, client, auth, clinician, vip, clock):
    """Ten wrong codes at Log In lock codes, as for any authenticator (a right one is then refused)."""
    secret = enrolled_with_vip(client, vip, clinician)
    auth.logout()
    auth.login(EMAIL, PASSWORD)
    limit = app.config["MFA_MAX_FAILED_CODES"]
    for _ in range(limit - 1):
        assert "not correct" in auth.enter_code("000000").get_data(as_text=True)
    locked = auth.enter_code("000000")
    assert locked.status_code == 429 and "Too many incorrect codes" in locked.get_data(as_text=True)
    refused = auth.enter_code(next_code(secret))
    assert refused.status_code == 429
    assert client.get("/").status_code == 303


def test_switching_away_removes_the_credential_at_vip(client, clinician, vip, queue, clock):
    """When the user switches to another method, is the VIP binding removed (on the queue)?"""
    enrolled_with_vip(client, vip, clinician)
    clinician_row = db.session.get(User, clinician.id)
    clinician_row.email_verified_at = clock.now()
    db.session.commit()
    confirm_password(client, PASSWORD)
    response = client.post("/account/security/device", data={"device": "email"})
    assert response.status_code in (200, 303)
    assert enrollment_of(clinician.id).method == "email"
    queue.drain()
    assert vip.stand_in.bound(f"portal-{clinician.id}") == set()
    removed = [fields for op, fields in vip.stand_in.calls if op == "RemoveCredential"]
    assert removed and removed[-1]["credentialId"] == CREDENTIAL


def test_support_clear_removes_the_credential_at_vip(app, client, auth, vip, queue, clock):
    """Support clears a VIP Access user's MFA: is the binding removed at VIP and the event
    naming the method?"""
    user = make_user(EMAIL)
    auth.login(EMAIL, PASSWORD)
    enrolled_with_vip(client, vip, user)
    staff = make_user("support@portal.test", role="support")
    secret = make_enrollment(staff, "totp")
    desk = app.test_client()
    desk.post("/login", data={"email": "support@portal.test", "password": PASSWORD})
    assert desk.post("/login/code", data={"code": totp_now(secret, clock)}).status_code == 303
    clock.advance(seconds=30)
    confirmed = desk.post("/support/confirm", data={"password": PASSWORD, "code": totp_now(secret, clock)})
    assert confirmed.status_code == 303
    response = desk.post(f"/support/users/{user.id}/clear-mfa", data={"reason": "Lost phone", "ticket": "SUP-9"})
    assert response.status_code == 303
    assert enrollment_of(user.id) is None
    queue.drain()
    assert vip.stand_in.bound(f"portal-{user.id}") == set()
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.event_type == "mfa.cleared"))
    assert json.loads(event.detail)["previous_method"] == "vip"


def test_support_confirms_with_a_vip_code(app, client, auth, vip, clock):
    """Can support staff use VIP Access (an authenticator) and confirm support work with its code?"""
    staff = make_user("support@portal.test", role="support")
    auth.login("support@portal.test", PASSWORD)
    secret = enrolled_with_vip(client, vip, staff)
    response = client.post("/support/confirm", data={"password": PASSWORD, "code": next_code(secret)})
    assert response.status_code == 303, response.get_data(as_text=True)
    assert client.get("/support/").status_code == 200


@pytest.mark.parametrize("fault", ["error", "internal", "stall"])
def test_vip_down_at_set_up_saves_nothing(client, clinician, vip, queue, clock, mode, fault):
    """VIP answering 500, its internal error, or nothing within the timeout at set-up: a clear
    503, nothing saved, no attempt counted, and any binding VIP may have made removed."""
    secret = vip.add_token(CREDENTIAL)
    confirm_password(client, PASSWORD)
    vip.stand_in.mode = fault
    response = register(client, secret, mode)
    assert response.status_code == 503
    assert "could not be reached just now, so nothing was saved" in response.get_data(as_text=True)
    assert enrollment_of(clinician.id) is None and failed_codes(clinician.id) == 0
    vip.stand_in.mode = "ok"
    queue.drain()
    assert vip.stand_in.bound(f"portal-{clinician.id}") == set()
    assert register(client, secret, mode).status_code in (204, 303)  # the codes work once VIP is back
    assert enrollment_of(clinician.id).vip_credential_id == CREDENTIAL


@pytest.mark.parametrize("fault", ["error", "stall"])
def test_vip_down_at_log_in_leaves_no_way_around_the_code(app, client, auth, clinician, vip, clock, fault):
    """VIP down or slow at Log In: a clear 503, still no way in, nothing counted; once VIP
    answers, the next code works."""
    secret = enrolled_with_vip(client, vip, clinician)
    auth.logout()
    auth.login(EMAIL, PASSWORD)
    vip.stand_in.mode = fault
    response = auth.enter_code(next_code(secret))
    assert response.status_code == 503
    assert "could not check your code with Symantec VIP Access" in response.get_data(as_text=True)
    assert client.get("/").status_code == 303 and failed_codes(clinician.id) == 0
    vip.stand_in.mode = "ok"
    assert auth.enter_code(next_code(secret)).status_code == 303
    assert client.get("/").status_code == 200


def test_parallel_requests_with_the_same_code_let_one_in(app, client, auth, clinician, vip, clock):
    """The same right code sent by many requests at once, to a VIP that would accept each: does
    exactly one succeed?"""
    secret = enrolled_with_vip(client, vip, clinician)
    auth.logout()
    vip.stand_in.accept_replays = True
    browsers = [log_in(app, EMAIL) for _ in range(8)]
    current = next_code(secret)
    results = fire(len(browsers), lambda i: browsers[i].post("/login/code", data={"code": current}).status_code)
    assert results.count(303) == 1, results
    assert all(status in (303, 400, 401) for status in results), results
    assert db.session.scalar(select(func.count(AuditEvent.id)).where(
        AuditEvent.event_type == "mfa.code_verified")) == 1


def test_parallel_registrations_of_one_pair_of_codes_bind_once(app, client, clinician, vip, clock):
    """The set-up form submitted many times at once with the same codes: one method, one binding."""
    secret = vip.add_token(CREDENTIAL)
    confirm_password(client, PASSWORD)
    first, second = codes_now(secret)
    data = {"credential_id": CREDENTIAL, "first_code": first, "second_code": second}
    copies = clones(app, client, 6)
    results = fire(len(copies), lambda i: copies[i].post("/account/security/vip", data=data).status_code)
    assert results.count(303) == 1, results
    assert db.session.scalar(select(func.count(MfaEnrollment.id))) == 1


def test_vip_access_is_hidden_when_not_configured(app, make_app, clock):  # app: emptied afterwards
    """Without VIP_API_BASE_URL: no VIP path on the Security tab, and choosing it is refused."""
    plain = make_app()
    with plain.app_context():
        make_user(EMAIL)
    client = plain.test_client()
    client.post("/login", data={"email": EMAIL, "password": PASSWORD})
    confirm_password(client, PASSWORD)
    html = client.get("/account/security").get_data(as_text=True)
    assert "VIP Access" not in html
    chosen = client.post("/account/security/device", data={"device": "totp"}, follow_redirects=True)
    assert "Use Symantec VIP Access" not in chosen.get_data(as_text=True)
    assert client.post("/account/security/device", data={"device": "vip"}).status_code == 403
    assert "VIP Access" not in client.get("/account/security?device=vip").get_data(as_text=True)
    assert client.post("/account/security/vip", data={"credential_id": CREDENTIAL, "first_code": "123456",
                                                       "second_code": "234567"}).status_code == 403


def test_the_client_presents_the_account_certificate_over_https(tmp_path):
    """Over HTTPS, does the client present VIP_CLIENT_CERT/KEY and trust only VIP_CA_BUNDLE, and
    does a call without the certificate fail as an outage?"""
    from portal.vip.client import SoapService
    from portal.vip.errors import ServiceUnavailable

    tls = TlsFiles.make(tmp_path / "tls")
    with VipServer(tls=tls) as server:
        good = SoapService(server.base_url, cert=(str(tls.client_cert), str(tls.client_key)), verify=str(tls.ca),
                           timeout=2)
        good.create_user("portal-1")
        assert server.client_certs and dict(x[0] for x in server.client_certs[-1]["subject"])["commonName"] == \
            "portal-vip-account"
        without = SoapService(server.base_url, cert=None, verify=str(tls.ca), timeout=2)
        with pytest.raises(ServiceUnavailable):
            without.create_user("portal-2")
        untrusting = SoapService(server.base_url, cert=(str(tls.client_cert), str(tls.client_key)), verify=True,
                                 timeout=2)
        with pytest.raises(ServiceUnavailable):
            untrusting.create_user("portal-3")
        assert server.stand_in.users.keys() == {"portal-1"}


def test_answers_that_are_not_vip_responses_are_outages(tmp_path):
    """A body that is not the expected SOAP response (HTML from a proxy, an entity bomb, another
    operation's answer) is never read as success."""
    from portal.vip import soap
    from portal.vip.errors import ServiceUnavailable

    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><x>&b;</x>'
    for body in (b"<html>Bad gateway</html>", b"not xml", bomb,
                 soap.response("CreateUser", "r", "0000", "Success")):
        with pytest.raises(ServiceUnavailable):
            soap.status_of(body, "AddCredential")
    assert soap.status_of(soap.response("AddCredential", "r", "6009", "Authentication failed."),
                          "AddCredential") == ("6009", "Authentication failed.")


def test_production_refuses_vip_without_its_certificate(tmp_path, monkeypatch):
    """Production with VIP_API_BASE_URL but no client certificate, or plain http: refused at start-up."""
    from config import ProductionConfig

    assert ProductionConfig.vip_problems({}) == []
    problems = ProductionConfig.vip_problems({"VIP_API_BASE_URL": "http://vip.example", "VIP_TIMEOUT_SECONDS": 5})
    assert any("https://" in p for p in problems) and any("VIP_CLIENT_CERT" in p for p in problems)
    tls = TlsFiles.make(tmp_path)
    assert ProductionConfig.vip_problems({
        "VIP_API_BASE_URL": "https://userservices-auth.vip.symantec.com/vipuserservices",
        "VIP_CLIENT_CERT": str(tls.client_cert), "VIP_CLIENT_KEY": str(tls.client_key),
        "VIP_TIMEOUT_SECONDS": 5}) == []


def test_stand_in_speaks_plain_http(vip):
    """The stand-in answers a hand-written request as VIP would (guards the tests' own tool)."""
    from portal.vip import soap

    answer = requests.post(f"{vip.base_url}/ManagementService_1_10", timeout=2,
                           data=soap.envelope("CreateUser", [("userId", "someone")]))
    assert soap.status_of(answer.content, "CreateUser") == ("0000", "Success")
