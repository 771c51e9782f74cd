"""Several identical instances behind a load balancer: two gunicorn servers, one PostgreSQL, one Redis.

Runs in CI's second pass (TEST_DATABASE_URL on PostgreSQL and TEST_SESSION_REDIS_URL set).
"""

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pyotp
import pytest
import requests

from portal.extensions import db
from tests.conftest import TEST_DATABASE_URL, TEST_SESSION_REDIS_URL
from tests.factories import PASSWORD, make_enrollment, make_user
from tests.functional.test_server import wait_for
from tests.smtp_server import free_port

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(not (TEST_DATABASE_URL and TEST_SESSION_REDIS_URL),
                       reason="needs PostgreSQL and Redis: "
                              "CI's second pass sets TEST_DATABASE_URL and TEST_SESSION_REDIS_URL"),
]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def instances(app, database_uri):
    """Two servers sharing everything but their process."""
    prefix = f"portal-instances-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "PORTAL_CONFIG": "development",
        "SECRET_KEY": "s" * 40,
        "DATABASE_URL": database_uri,
        "SESSION_REDIS_URL": TEST_SESSION_REDIS_URL,
        "SESSION_KEY_PREFIX": prefix + ":session:",
        "RATELIMIT_STORAGE_URI": TEST_SESSION_REDIS_URL,
        "RATELIMIT_KEY_PREFIX": prefix + ":limits",
        "LIMIT_LOGIN_PER_ACCOUNT": "3 per minute",
        "MFA_ENCRYPTION_KEYS": app.config["MFA_ENCRYPTION_KEYS"][0],
        "GUNICORN_WORKERS": "1",
    }
    servers = []
    try:
        for _ in range(2):
            port = free_port()
            process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                cwd=ROOT, env={**env, "GUNICORN_BIND": f"127.0.0.1:{port}"},
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )
            servers.append((f"http://127.0.0.1:{port}", process))
        for base, process in servers:
            wait_for(base + "/healthz", process)
        yield [base for base, _ in servers]
    finally:
        for _, process in servers:
            process.terminate()
            process.wait(timeout=10)


def csrf(html: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def last_code(outbox, recipient):
    return re.search(r"\b(\d{6})\b", outbox.last(recipient).body_text).group(1)


def login(browser, base, email, password):
    token = csrf(browser.get(base + "/login").text)
    return browser.post(base + "/login", data={"email": email, "password": password, "csrf_token": token},
                        allow_redirects=False)


def test_password_on_a_code_on_b(instances, outbox):
    """Does a Log In started on instance A finish on instance B?"""
    a, b = instances
    user = make_user("roaming@example.test")
    make_enrollment(user, "email")
    browser = requests.Session()
    response = login(browser, a, "roaming@example.test", PASSWORD)
    assert response.status_code == 303 and response.headers["Location"] == "/login/code"
    page = browser.get(b + "/login/code")
    assert "Enter the code provided" in page.text
    response = browser.post(b + "/login/code", data={"code": last_code(outbox, "roaming@example.test"),
                                                      "csrf_token": csrf(page.text)}, allow_redirects=False)
    assert response.status_code == 303 and response.headers["Location"] == "/"
    assert "Dashboard" in browser.get(a + "/").text
    assert "Dashboard" in browser.get(b + "/").text


def test_rate_limit_hit_on_a_holds_on_b(instances):
    a, b = instances
    make_user("limited@example.test")
    browser = requests.Session()
    for _ in range(3):
        assert login(browser, a, "limited@example.test", "guess guess guess").status_code == 401
    assert login(browser, b, "limited@example.test", PASSWORD).status_code == 429


def test_support_clear_on_a_ends_the_session_on_b(instances, outbox):
    a, b = instances
    victim = make_user("victim@example.test")
    make_enrollment(victim, "email")
    support = make_user("support@portal.test", role="support")
    secret = make_enrollment(support, "totp")
    victim_id = victim.id
    db.session.commit()

    victim_browser = requests.Session()
    login(victim_browser, b, "victim@example.test", PASSWORD)
    page = victim_browser.get(b + "/login/code")
    victim_browser.post(b + "/login/code", data={"code": last_code(outbox, "victim@example.test"),
                                                 "csrf_token": csrf(page.text)})
    assert "Dashboard" in victim_browser.get(b + "/").text

    staff = requests.Session()
    totp = pyotp.TOTP(secret)
    login(staff, a, "support@portal.test", PASSWORD)
    page = staff.get(a + "/login/code")
    previous_step = totp.at(__import__("time").time() - 30)
    assert staff.post(a + "/login/code", data={"code": previous_step, "csrf_token": csrf(page.text)},
                      allow_redirects=False).status_code == 303
    page = staff.get(a + "/support/confirm")
    response = staff.post(a + "/support/confirm",
                          data={"password": PASSWORD, "code": totp.now(), "csrf_token": csrf(page.text)},
                          allow_redirects=False)
    assert response.status_code == 303, response.text
    page = staff.get(f"{a}/support/users/{victim_id}")
    response = staff.post(f"{a}/support/users/{victim_id}/clear-mfa",
                          data={"reason": "Lost phone", "ticket": "SUP-77", "csrf_token": csrf(page.text)},
                          allow_redirects=False)
    assert response.status_code == 303

    after = victim_browser.get(b + "/", allow_redirects=False)
    assert after.status_code == 303 and after.headers["Location"].startswith("/login")
