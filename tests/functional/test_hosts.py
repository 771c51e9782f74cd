"""Production answers only for its own host names, and sends plain HTTP to HTTPS at its own
host: never at the one a request names (portal/hosts.py, portal/headers.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from werkzeug.test import EnvironBuilder, run_wsgi_app

from tests.factories import PASSWORD, make_user
from tests.functional.fuzz_helpers import assert_handled, database_state

BAD_REQUEST = "The request could not be understood."
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def guarded(make_app, app):
    """The app answering only for portal.example.org and its www alias, as in production."""
    return make_app(TRUSTED_HOSTS=["portal.example.org", "www.portal.example.org"],
                    PUBLIC_BASE_URL="https://portal.example.org")


@pytest.mark.parametrize("host", [
    "evil.example", "portal.example.org.evil.example", "evilportal.example.org", "sub.portal.example.org",
    "127.0.0.1", "localhost:5000", "portal.example.org@evil.example", "portal.example.org:99999", "", " ",
])
def test_any_other_host_gets_the_400_page_and_nothing_is_written(guarded, host):
    """Does a Host that is not the portal's own get the usual 400 page (plain and HTMX), before
    anything runs, with nothing written, even for a correct Log In?"""
    make_user("host@example.test")
    client = guarded.test_client()
    before = database_state()
    for headers in ({}, {"HX-Request": "true"}):
        page = client.get("/login", headers={"Host": host, **headers})
        body = assert_handled(page)
        assert page.status_code == 400 and BAD_REQUEST in body, (host, page.status_code)
        assert ("<html" in body) is not bool(headers)
        assert host not in body or host in ("", " ")
        login = client.post("/login", data={"email": "host@example.test", "password": PASSWORD},
                            headers={"Host": host, **headers})
        assert login.status_code == 400 and "Set-Cookie" not in login.headers
    assert client.get("/nowhere", headers={"Host": host}).status_code == 400
    assert database_state() == before


def test_a_request_without_a_host_header_is_refused(guarded):
    """Does an HTTP/1.0 request with no Host (the server's own name stands in) get the 400?"""
    environ = EnvironBuilder(path="/login", base_url="http://portal.example.org").get_environ()
    del environ["HTTP_HOST"]
    environ["SERVER_NAME"], environ["SERVER_PORT"] = "10.0.0.7", "8000"
    body, status, _ = run_wsgi_app(guarded, environ, buffered=True)
    assert status.startswith("400 ") and BAD_REQUEST in b"".join(body).decode()
    environ["SERVER_NAME"] = "portal.example.org"
    assert run_wsgi_app(guarded, environ, buffered=True)[1].startswith("200 ")


@pytest.mark.parametrize("host", ["portal.example.org", "PORTAL.example.org", "portal.example.org:8443",
                                  "www.portal.example.org"])
def test_the_portals_own_names_are_served(guarded, host):
    assert guarded.test_client().get("/login", headers={"Host": host}).status_code == 200


def test_health_checks_and_metrics_answer_for_any_host(guarded):
    """Do /healthz, /readyz and /metrics answer a load balancer or Prometheus that reaches the
    instance by its address (their own rules still apply: metrics only to allowed networks)?"""
    client = guarded.test_client()
    for path in ("/healthz", "/readyz", "/metrics"):
        assert client.get(path, headers={"Host": "10.0.0.7:8000"}).status_code == 200, path
    outside = client.get("/metrics", headers={"Host": "10.0.0.7:8000"}, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert outside.status_code == 404
    assert client.get("/healthz/", headers={"Host": "10.0.0.7:8000"}).status_code == 400  # the exact paths only


def test_a_subdomain_rule_admits_subdomains_only(make_app, app):
    suffixed = make_app(TRUSTED_HOSTS=[".example.org"])
    client = suffixed.test_client()
    assert client.get("/login", headers={"Host": "clinic.example.org"}).status_code == 200
    assert client.get("/login", headers={"Host": "example.org"}).status_code == 200
    assert client.get("/login", headers={"Host": "example.org.evil.test"}).status_code == 400


def test_the_https_redirect_goes_to_the_configured_host(make_app, app):
    """Is plain HTTP sent to PUBLIC_BASE_URL's host (path and query kept), whatever Host the
    request named, with or without the host check?"""
    for trusted in (None, ["portal.example.org", "www.portal.example.org"]):
        https = make_app(REQUIRE_HTTPS=True, PUBLIC_BASE_URL="https://portal.example.org", TRUSTED_HOSTS=trusted)
        client = https.test_client()
        hosts = ["www.portal.example.org", "portal.example.org:8080"] + (["evil.example"] if trusted is None else [])
        for host in hosts:
            response = client.get("/login?next=/account/security", headers={"Host": host})
            assert response.status_code == 308
            assert response.headers["Location"] == "https://portal.example.org/login?next=/account/security", host
        assert client.get("/healthz", headers={"Host": "10.0.0.7"}).status_code == 200


@pytest.mark.parametrize("environment, expected", [
    ({"PUBLIC_BASE_URL": "https://portal.example.org:8443/portal"}, ["portal.example.org"]),
    ({"PUBLIC_BASE_URL": "https://portal.example.org", "TRUSTED_HOSTS": "portal.example.org, .clinic.example"},
     ["portal.example.org", ".clinic.example"]),
])
def test_production_trusts_the_host_of_its_public_url_unless_told(environment, expected):
    """Does production default TRUSTED_HOSTS to PUBLIC_BASE_URL's host, and read a list?"""
    env = {key: value for key, value in os.environ.items() if key not in ("TRUSTED_HOSTS", "PUBLIC_BASE_URL")}
    result = subprocess.run([sys.executable, "-c", "from config import ProductionConfig as C; print(C.TRUSTED_HOSTS)"],
                            cwd=ROOT, env={**env, **environment}, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == repr(expected), result.stderr
