"""Email over a real SMTP server on loopback, and what happens when it is unreachable."""

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Invitation
from tests.factories import PASSWORD, make_user
from tests.smtp_server import SMTPServer, free_port

pytestmark = pytest.mark.smtp


@pytest.fixture
def smtp():
    with SMTPServer() as server:
        yield server


def smtp_app(make_app, port):
    return make_app(MAIL_TRANSPORT="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=port, MAIL_SUPPRESS_SEND=False,
                    MAIL_TIMEOUT_SECONDS=2)


def test_password_reset_is_delivered_over_smtp(app, make_app, smtp):
    """Does a reset email really leave through SMTP, with text and HTML parts and the link?"""
    make_user("smtp@example.test", display_name="Sam Smtp")
    client = smtp_app(make_app, smtp.port).test_client()
    response = client.post("/forgot-password", data={"email": "smtp@example.test"})
    assert response.status_code == 200
    assert len(smtp.messages) == 1
    received = smtp.messages[0]
    assert received["to"] == ["smtp@example.test"]
    message = received["message"]
    assert message["Subject"] == "Reset your Practice Portal password"
    assert message["To"] == "smtp@example.test"
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "Hello Sam Smtp," in text
    assert "http://portal.test/reset-password/" in text
    assert 'href="http://portal.test/reset-password/' in html


def test_unreachable_smtp_server_gives_a_clear_page_and_keeps_nothing(app, make_app):
    """When the mail server is down, does the admin get a clear message and no half-made invitation?"""
    make_user("admin@example.test", role="practice_admin")
    client = smtp_app(make_app, free_port()).test_client()
    client.post("/login", data={"email": "admin@example.test", "password": PASSWORD})
    response = client.post("/practice/invitations",
                           data={"email": "new@example.test", "display_name": "New", "role": "staff"})
    assert response.status_code == 503
    assert "could not be sent" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(Invitation.id))) == 0


def test_unreachable_smtp_server_does_not_reveal_accounts(app, make_app):
    """Does a mail failure on forgot-password still give the same generic answer?"""
    make_user("known@example.test")
    client = smtp_app(make_app, free_port()).test_client()
    known = client.post("/forgot-password", data={"email": "known@example.test"})
    unknown = client.post("/forgot-password", data={"email": "unknown@example.test"})
    assert known.status_code == unknown.status_code == 200
    assert known.get_data(as_text=True) == unknown.get_data(as_text=True)
