"""SMS codes through Twilio's API, spoken for real over HTTP to a stand-in on loopback."""

from __future__ import annotations

import logging
import re
import threading

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.mfa import messages
from portal.mfa.errors import DeliveryFailed
from portal.models import MfaCode, User
from tests.factories import PASSWORD, make_enrollment, make_user
from tests.sms_server import SMSServer

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "stand-in-auth-token-0123456789ab"
FROM_NUMBER = "+15005550006"
PHONE = "+12025550143"


@pytest.fixture
def sms():
    with SMSServer(ACCOUNT_SID, AUTH_TOKEN) as server:
        yield server


@pytest.fixture
def sms_app(make_app, sms):
    return make_app(SMS_TRANSPORT="twilio", TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN=AUTH_TOKEN,
                    TWILIO_FROM_NUMBER=FROM_NUMBER, TWILIO_API_BASE_URL=sms.base_url, SMS_TIMEOUT_SECONDS=1)


def code_in(body: str) -> str:
    match = re.search(r"\b([0-9]{6})\b", body)
    assert match, body
    return match.group(1)


# -- the message itself ---------------------------------------------------------------------


def test_code_text_reaches_twilio_with_credentials_and_safe_wording(app, sms_app, sms):
    """Does a code text reach the provider, authenticated, to the right number, saying only what it should?"""
    with sms_app.app_context():
        messages.send_code("sms", PHONE, "123456")
    assert len(sms.requests) == 1
    received = sms.requests[0]
    assert received.method == "POST"
    assert received.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert (received.username, received.password) == (ACCOUNT_SID, AUTH_TOKEN)
    assert received.form["To"] == PHONE
    assert received.form["From"] == FROM_NUMBER
    body = received.form["Body"]
    assert "Practice Portal" in body
    assert "123456" in body
    assert "5 minutes" in body
    assert "Never share this code" in body
    assert "http" not in body.lower() and "www." not in body.lower()


def test_provider_error_raises_delivery_failed(app, sms_app, sms):
    """When the provider answers 500, does the sender get DeliveryFailed (a retry message), not a crash?"""
    sms.mode = "error"
    with sms_app.app_context(), pytest.raises(DeliveryFailed) as failed:
        messages.send_code("sms", PHONE, "123456")
    assert "could not send your code" in str(failed.value)
    assert len(sms.requests) == 1  # tried once, no retry storm


def test_a_stalled_provider_gives_up_quickly(app, sms_app, sms):
    """When the provider hangs, does sending fail with DeliveryFailed within a few seconds?"""
    sms.mode = "stall"
    outcome = {}

    def send():
        with sms_app.app_context():
            try:
                messages.send_code("sms", PHONE, "123456")
            except DeliveryFailed as error:
                outcome["error"] = error
            else:
                outcome["error"] = None

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    sender.join(timeout=4)  # the stand-in holds for 5 s; the client's timeout is 1 s
    assert not sender.is_alive(), "sending did not give up within a few seconds"
    assert isinstance(outcome.get("error"), DeliveryFailed)


def test_wrong_credentials_are_a_delivery_failure(app, make_app, sms):
    """With a wrong auth token, does the provider's 401 become a clear DeliveryFailed?"""
    bad = make_app(SMS_TRANSPORT="twilio", TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN="wrong-token",
                   TWILIO_FROM_NUMBER=FROM_NUMBER, TWILIO_API_BASE_URL=sms.base_url, SMS_TIMEOUT_SECONDS=1)
    with bad.app_context(), pytest.raises(DeliveryFailed):
        messages.send_code("sms", PHONE, "123456")


def test_neither_code_nor_phone_reaches_the_logs(app, sms_app, sms, caplog):
    """Does sending, or failing to send, keep the code and the full phone number out of every log line?"""
    caplog.set_level(logging.DEBUG)
    with sms_app.app_context():
        messages.send_code("sms", PHONE, "482913")
        sms.mode = "error"
        with pytest.raises(DeliveryFailed):
            messages.send_code("sms", PHONE, "482913")
    assert len(sms.messages) == 2
    assert caplog.records, "expected at least the delivery-failure warning"
    for record in caplog.records:
        line = record.getMessage()
        assert "482913" not in line
        assert PHONE not in line and PHONE[2:] not in line


# -- Log In end to end ----------------------------------------------------------------------


def test_login_with_an_sms_code_from_the_provider(app, sms_app, sms):
    """Can a user with SMS log in with the code that arrived at the provider, and only once?"""
    user = make_user("texter@example.test")
    make_enrollment(user, "sms", phone=PHONE)
    client = sms_app.test_client()

    response = client.post("/login", data={"email": "texter@example.test", "password": PASSWORD})
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/login/code")
    assert len(sms.messages) == 1
    text = sms.messages[0]
    assert text["To"] == PHONE
    code = code_in(text["Body"])

    page = client.get("/login/code")
    assert page.status_code == 200
    assert "(***) ***-0143" in page.get_data(as_text=True)
    assert code not in page.get_data(as_text=True)

    response = client.post("/login/code", data={"code": code})
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    assert client.get("/").status_code == 200


def test_provider_failure_at_login_shows_a_retry_message_and_costs_nothing(app, sms_app, sms):
    """When the text cannot be sent, does the user see a retry message, keep every attempt, and can resend?"""
    user = make_user("unlucky@example.test")
    make_enrollment(user, "sms", phone=PHONE)
    client = sms_app.test_client()
    sms.mode = "error"

    response = client.post("/login", data={"email": "unlucky@example.test", "password": PASSWORD})
    assert response.status_code == 303
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    assert "We could not send your code just now" in page.get_data(as_text=True)

    db.session.expire_all()
    assert db.session.scalar(select(User.mfa_failed_count).where(User.id == user.id)) == 0
    assert db.session.scalar(select(func.count(MfaCode.id)).where(MfaCode.user_id == user.id)) == 0

    # The provider recovers: "click here" works at once (no cooldown for a text never sent).
    sms.mode = "ok"
    response = client.post("/login/code/resend")
    assert response.status_code == 303
    assert len(sms.messages) == 2
    code = code_in(sms.messages[-1]["Body"])
    response = client.post("/login/code", data={"code": code})
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


def test_provider_failure_on_resend_is_a_clear_503_and_the_old_code_still_works(app, sms_app, sms, clock):
    """When a resend cannot be sent, does the status area say so with a 503, and the old code still work?"""
    user = make_user("resender@example.test")
    make_enrollment(user, "sms", phone=PHONE)
    client = sms_app.test_client()
    client.post("/login", data={"email": "resender@example.test", "password": PASSWORD})
    first_code = code_in(sms.messages[-1]["Body"])

    sms.mode = "error"
    clock.advance(seconds=31)  # past the resend cooldown
    response = client.post("/login/code/resend", headers={"HX-Request": "true", "HX-Target": "code-status"})
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert "We could not send your code just now" in response.get_data(as_text=True)
    assert len(sms.messages) == 2

    response = client.post("/login/code", data={"code": first_code})
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    db.session.expire_all()
    assert db.session.scalar(select(User.mfa_failed_count).where(User.id == user.id)) == 0


# -- setting SMS up -------------------------------------------------------------------------


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_a_failed_send_at_sms_setup_says_so_and_asks_for_the_number_again(app, sms_app, sms, htmx):
    """The first code to a new number cannot be sent: the phone step says the number was not
    saved (no "click here" to promise); a "click here" sent anyway (an older page, a second tab)
    says what happened and shows the phone step, never "took longer than 10 minutes"; once the
    provider is back, the same number goes through."""
    from portal.models import MfaPendingEnrollment

    headers = {"HX-Request": "true", "HX-Target": "security-panel"} if htmx else {}
    make_user("setup@example.test")
    client = sms_app.test_client()
    client.post("/login", data={"email": "setup@example.test", "password": PASSWORD})
    client.post("/account/security/confirm-password", data={"password": PASSWORD})
    client.post("/account/security/device", data={"device": "sms"})

    sms.mode = "error"
    response = client.post("/account/security/phone", data={"phone": "(202) 555-0143"}, headers=headers)
    html = response.get_data(as_text=True)
    assert response.status_code == 503
    assert "could not send a code to that number just now, so it was not saved" in html
    assert "click here" not in html and 'name="phone"' in html
    assert db.session.scalar(select(func.count(MfaPendingEnrollment.id))) == 0

    response = client.post("/account/security/phone/resend", headers=headers)
    if not htmx:
        assert response.status_code == 303
        response = client.get(response.headers["Location"])
    html = response.get_data(as_text=True)
    assert "Your code could not be sent, so your number was not saved" in html
    assert "Enter your mobile number again." in html and 'name="phone"' in html
    assert "took longer than" not in html
    assert len(sms.requests) == 1  # the failed attempt only: nothing was resent

    sms.mode = "ok"
    response = client.post("/account/security/phone", data={"phone": "(202) 555-0143"}, headers=headers)
    assert response.status_code in (200, 303)
    code = code_in(sms.messages[-1]["Body"])
    response = client.post("/account/security/verify", data={"code": code}, headers=headers)
    assert response.status_code in (204, 303)
    db.session.expire_all()
    assert db.session.scalar(select(User).where(User.email == "setup@example.test")).mfa.method == "sms"
