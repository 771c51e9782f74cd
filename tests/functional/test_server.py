"""wsgi.py under a real gunicorn, with production settings, on loopback."""

import http.client
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.production_env import production_settings
from tests.smtp_server import free_port

pytestmark = pytest.mark.server
ROOT = Path(__file__).resolve().parents[2]


def wait_for(url: str, process, seconds: float = 20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(process.stdout.read().decode(errors="replace"))
        try:
            return urllib.request.urlopen(url, timeout=2)
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"server did not answer at {url}")


def test_gunicorn_serves_the_login_page_in_production(database_uri, migrated):
    """Does `gunicorn wsgi:app` start with production settings and serve Log In safely?"""
    port = free_port()
    env = {
        **os.environ,
        **production_settings(database_uri),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
        "TRUSTED_PROXY_COUNT": "1",  # as behind one TLS-terminating proxy
        "FORWARDED_ALLOW_IPS": "127.0.0.1",  # ... that connects from loopback
        "PUBLIC_BASE_URL": "https://portal.example.org",  # the one host it answers for
    }
    env.pop("DEV_OUTBOX", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    behind_tls = {"Host": "portal.example.org", "X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"}

    def fetch(path, timeout=10):
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=behind_tls)
        return urllib.request.urlopen(request, timeout=timeout)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", process)  # health checks answer over plain HTTP
        with pytest.raises(urllib.error.HTTPError) as plain:
            urllib.request.build_opener(NoRedirect).open(
                urllib.request.Request(f"http://127.0.0.1:{port}/login", headers={"Host": "portal.example.org"}),
                timeout=10)
        assert plain.value.code == 308 and plain.value.headers["Location"] == "https://portal.example.org/login"
        response = fetch("/login")
        body = response.read().decode()
        assert response.status == 200
        assert "<h1>Log In</h1>" in body
        assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")
        cookie = response.headers["Set-Cookie"]
        assert cookie.startswith("__Host-portal_session=") and "Secure" in cookie and "HttpOnly" in cookie
        with pytest.raises(urllib.error.HTTPError) as missing:
            fetch("/dev/outbox")
        assert missing.value.code == 404
        with pytest.raises(urllib.error.HTTPError):
            fetch("/reset-password/SECRET-TOKEN-VALUE")
        with pytest.raises(urllib.error.HTTPError):
            fetch("/invitations/SECRET-INVITE-VALUE")
    finally:
        process.terminate()
        process.wait(timeout=10)
    log = process.stdout.read().decode(errors="replace")
    assert "/reset-password/[token]" in log  # the access log masks one-time link tokens
    assert "/invitations/[token]" in log
    assert "SECRET-TOKEN-VALUE" not in log and "SECRET-INVITE-VALUE" not in log


def production_env(port: int, database_uri: str, **extra: str) -> dict[str, str]:
    """Production settings on loopback, for https://portal.example.org, with no proxy unless
    `extra` says so (whatever the test runner's own environment holds)."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("DEV_OUTBOX", "TRUSTED_PROXY_COUNT", "FORWARDED_ALLOW_IPS", "TRUSTED_HOSTS", "LOG_FORMAT")}
    env.update({
        **production_settings(database_uri),
        "PUBLIC_BASE_URL": "https://portal.example.org",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
        **extra,
    })
    return env


def raw_get(port: int, path: str, headers: dict) -> tuple[int, dict, str]:
    """One GET with exactly these headers (Host included), redirects not followed."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode(errors="replace")
    finally:
        connection.close()


def test_a_client_on_this_host_cannot_claim_https_by_default(database_uri, migrated):
    """With no proxy configured (the default), does gunicorn ignore a loopback client's
    X-Forwarded-Proto: https (and -Ssl, -Protocol), so plain HTTP is still sent to HTTPS at the
    configured host? And does another Host get the 400 page while health checks answer?"""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT, env=production_env(port, database_uri), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", process)  # Host 127.0.0.1: health checks answer any
        for claim in ({"X-Forwarded-Proto": "https"}, {"X-Forwarded-Ssl": "on"}, {"X-Forwarded-Protocol": "ssl"}):
            status, headers, _ = raw_get(port, "/login", {"Host": "portal.example.org", **claim,
                                                          "X-Forwarded-For": "198.51.100.7"})
            assert status == 308, (claim, status)
            assert headers["Location"] == "https://portal.example.org/login"
            assert "Set-Cookie" not in headers  # no session over plain HTTP
        status, headers, body = raw_get(port, "/login", {"Host": "evil.example", "X-Forwarded-Proto": "https"})
        assert status == 400 and "The request could not be understood." in body and "Location" not in headers
        assert raw_get(port, "/readyz", {"Host": "10.0.0.7:8000"})[0] == 200
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_gunicorn_will_not_start_behind_proxies_it_cannot_name(database_uri):
    """Does TRUSTED_PROXY_COUNT without FORWARDED_ALLOW_IPS stop gunicorn at start?"""
    env = production_env(free_port(), database_uri, TRUSTED_PROXY_COUNT="1")
    result = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--check-config", "wsgi:app"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "FORWARDED_ALLOW_IPS must list the proxies' addresses" in result.stdout + result.stderr


def test_gunicorn_refuses_to_start_without_a_secret_key(database_uri):
    """Does a production server with no SECRET_KEY refuse to start rather than run unsafely?"""
    env = {**os.environ, "PORTAL_CONFIG": "production", "DATABASE_URL": database_uri, "MAIL_TRANSPORT": "smtp"}
    env.pop("SECRET_KEY", None)
    result = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr
