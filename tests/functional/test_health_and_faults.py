"""Health checks for the load balancer, and clear pages when a dependency fails."""

import socket
import threading

from sqlalchemy import select

from portal.extensions import db
from portal.models import Invitation
from tests.factories import PASSWORD, make_user
from tests.smtp_server import free_port


def test_liveness_and_readiness(client):
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["checks"]["database"] == "ok"


def test_readiness_names_a_redis_that_is_down(make_app, app):
    """The session store down: not ready (503). The rate limits' storage down: named, but the
    portal serves on with limits in memory ("degraded", 200). test_session_store_outage has more."""
    limits_down = make_app(RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{free_port()}/0", SESSION_REDIS_URL=None)
    response = limits_down.test_client().get("/readyz")
    assert response.status_code == 200
    assert response.json == {"status": "degraded", "checks": {"database": "ok", "rate_limit_store": "failed"}}
    sessions_down = make_app(SESSION_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    response = sessions_down.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json == {"status": "unavailable", "checks": {"database": "ok", "session_store": "failed"}}
    assert response.headers["Retry-After"]


def test_readiness_fails_when_the_database_is_down(make_app, app, tmp_path):
    broken = make_app(SQLALCHEMY_DATABASE_URI=f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none",
                      SESSION_REDIS_URL=None)
    response = broken.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["database"] == "failed"


def test_database_unavailable_gives_a_503_page_not_a_trace(make_app, app):
    """With the database unreachable, does the user get a calm 503 page with a reference?"""
    broken = make_app(SQLALCHEMY_DATABASE_URI=f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none",
                      SESSION_REDIS_URL=None)
    response = broken.test_client().post("/login", data={"email": "a@example.test", "password": PASSWORD})
    assert response.status_code == 503
    html = response.get_data(as_text=True)
    assert "briefly unavailable" in html and "Traceback" not in html and "psycopg" not in html
    assert response.headers["X-Request-ID"] in html


def test_slow_smtp_server_times_out_with_a_clear_page(make_app, app):
    """An SMTP server that accepts but never answers: does the invitation fail fast and cleanly?"""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    port = listener.getsockname()[1]
    accepted = []

    def accept():
        try:
            while True:
                connection, _ = listener.accept()
                accepted.append(connection)  # never send the 220 greeting
        except OSError:
            pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        slow = make_app(MAIL_TRANSPORT="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=port, MAIL_SUPPRESS_SEND=False,
                        MAIL_TIMEOUT_SECONDS=1)
        make_user("admin@example.test", role="practice_admin")
        client = slow.test_client()
        client.post("/login", data={"email": "admin@example.test", "password": PASSWORD})
        response = client.post("/practice/invitations",
                               data={"email": "n@example.test", "display_name": "N", "role": "staff"})
        assert response.status_code == 503
        assert "could not be sent" in response.get_data(as_text=True)
        assert db.session.scalar(select(Invitation)) is None
    finally:
        listener.close()
        for connection in accepted:
            connection.close()


def test_every_response_has_a_request_id_and_headers(client):
    response = client.get("/login")
    assert len(response.headers["X-Request-ID"]) == 16
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def test_unknown_page_is_a_generic_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404 and "We could not find that page." in response.get_data(as_text=True)


def test_csp_and_htmx_configuration(client):
    """Is the page locked down: no inline or eval'd script, no plugins, htmx held to its own origin?"""
    response = client.get("/login")
    csp = dict(part.strip().split(" ", 1) for part in response.headers["Content-Security-Policy"].split(";"))
    assert csp["default-src"] == "'self'" and csp["script-src"] == "'self'" and csp["object-src"] == "'none'"
    assert csp["frame-ancestors"] == "'none'"
    assert "unsafe" not in response.headers["Content-Security-Policy"]
    import json
    import re

    html = response.get_data(as_text=True)
    config = json.loads(re.search(r"<meta name=\"htmx-config\" content='([^']+)'>", html).group(1))
    assert config["selfRequestsOnly"] is True and config["allowScriptTags"] is False and config["allowEval"] is False
    assert "<script>" not in html and " style=" not in html and "onclick" not in html


def test_generic_500_page_has_a_reference_and_no_trace(make_app, app):
    broken = make_app()

    @broken.route("/boom")
    def boom():
        raise RuntimeError("secret internals")

    broken.view_functions["boom"].is_public = True
    response = broken.test_client().get("/boom")
    html = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "Something went wrong on our side" in html and response.headers["X-Request-ID"] in html
    assert "secret internals" not in html and "Traceback" not in html


def test_a_body_over_the_limit_gets_the_413_page_unread(make_app, app):
    """MAX_CONTENT_LENGTH (64 KiB by default; every form is a few fields): a larger body is
    refused with the usual page, from its Content-Length, before it is read."""
    assert app.config["MAX_CONTENT_LENGTH"] == 64 * 1024
    client = app.test_client()
    response = client.post("/login", data={"email": "a@example.test", "password": "x" * (64 * 1024)})
    html = response.get_data(as_text=True)
    assert response.status_code == 413
    assert "That request was too large." in html and 'href="/static/css/portal.css' in html
    assert client.post("/login", data={"email": "a@example.test", "password": "x" * 60_000}).status_code != 413

    small = make_app(MAX_CONTENT_LENGTH=512)
    assert small.test_client().post("/login", data={"email": "a@example.test", "password": "x" * 600}
                                    ).status_code == 413
    read = []

    class Unread:  # a body that says how much of it was read
        def read(self, size=-1):
            read.append(size)
            return b""

    response = small.test_client().post("/login", content_type="application/x-www-form-urlencoded",
                                        environ_overrides={"wsgi.input": Unread(),
                                                           "CONTENT_LENGTH": str(10 * 1024 * 1024)})
    assert response.status_code == 413 and read == []


def test_a_500_raised_before_the_portals_hooks_logs_its_path_and_request_id(make_app, app, caplog):
    """An exception while the session is opened (outside any view or hook): the 500 page, and
    a log line with the method, the path (link token masked) and the id the page quotes."""
    broken = make_app(PROPAGATE_EXCEPTIONS=False)

    def fail(*args, **kwargs):
        raise RuntimeError("the store is on fire")

    broken.session_interface.open_session = fail
    response = broken.test_client().get("/reset-password/SECRET-TOKEN")
    reference = response.headers["X-Request-ID"]
    assert response.status_code == 500 and reference in response.get_data(as_text=True)
    lines = [record for record in caplog.records if record.levelname == "ERROR" and record.name == "portal"]
    assert len(lines) == 1
    assert lines[0].getMessage() == f"unhandled error on GET /reset-password/[token] (reference {reference})"
    assert lines[0].request_id == reference and lines[0].exc_info
    assert "SECRET-TOKEN" not in caplog.text


def test_a_500_that_escapes_flask_still_logs_its_path_and_request_id(make_app, app, caplog, monkeypatch):
    """Even the error handler failing (so Flask lets the exception out): not gunicorn's bare
    500 but the plain error page with a reference, logged with the path and that id."""
    broken = make_app(PROPAGATE_EXCEPTIONS=False)

    @broken.route("/boom/<token>")
    def boom(token):
        raise RuntimeError("secret internals")

    broken.view_functions["boom"].is_public = True

    def failing_page(*args, **kwargs):
        raise RuntimeError("the error page broke too")

    monkeypatch.setattr("portal.errors.render_error", failing_page)
    response = broken.test_client().get("/boom/x")
    html = response.get_data(as_text=True)
    reference = response.headers["X-Request-ID"]
    assert response.status_code == 500 and "Something went wrong on our side" in html and reference in html
    assert "secret internals" not in html and "Traceback" not in html
    outside = [record for record in caplog.records if "outside the app" in record.getMessage()]
    assert len(outside) == 1
    assert outside[0].getMessage() == f"unhandled error outside the app on GET /boom/x (reference {reference})"
    assert outside[0].request_id == reference
    # Every line the request wrote carries the same id.
    assert {record.request_id for record in caplog.records if record.levelname == "ERROR"} == {reference}


def test_the_pages_nginx_serves_itself_are_the_portals_own(app):
    """static/errors/*.html (deploy/nginx.conf's error_page) are what `flask error-pages` writes
    from the portal's template: regenerate them after changing the template."""
    from pathlib import Path

    from portal.errors import MESSAGES, proxy_pages

    directory = Path(app.static_folder) / "errors"
    for name, html in proxy_pages(app).items():
        assert (directory / name).read_text(encoding="utf-8") == html + "\n", f"run `flask error-pages` ({name})"
        assert MESSAGES[int(name.split(".")[0])] in html
    nginx = (Path(app.root_path).parent / "deploy" / "nginx.conf").read_text()
    for status in (400, 413, 429):
        assert f"error_page {status} /static/errors/{status}.html;" in nginx
    assert "error_page 502 503 504 /static/errors/503.html;" in nginx
