"""App-wide error pages: generic text, a reference id for support, HTMX-aware.

Every failure gets the portal's own page, even when the layout's usual inputs are missing:
the session store down gives the 503 "briefly unavailable" page (`session_store_unavailable`,
called by portal/sessions.py), a page that cannot be rendered falls back to a plain one, and
an exception that escapes Flask altogether is answered and logged by `LastResort`, the
outermost WSGI layer, with the request's method, path (link tokens masked) and id.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from flask import Flask, current_app, g, render_template, request, session, url_for
from flask.globals import request_ctx
from flask.sessions import NullSession
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from markupsafe import escape
from redis.exceptions import RedisError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable

from portal import clock, metrics
from portal.extensions import db
from portal.htmx import is_htmx, wants_fragment
from portal.logging import mask_path

MESSAGES = {
    400: "The request could not be understood. Go back, reload the page and try again.",
    401: "Please log in to continue.",
    403: "You do not have access to this page.",
    404: "We could not find that page.",
    405: "That action is not allowed here.",
    413: "That request was too large.",
    429: "Too many attempts. Wait a moment and try again.",
    500: "Something went wrong on our side. Please try again.",
    503: "The portal is briefly unavailable. Please try again in a moment.",
}

# The id LastResort gives each request at the door (WSGI environ key): the request's id when it
# fails before the portal's own hooks have given it one (g.request_id, portal.audit).
REQUEST_ID_KEY = "portal.request_id"
# What a 503 asks the browser (and a load balancer) to wait before trying again.
UNAVAILABLE_RETRY_SECONDS = 5


def retry_after(seconds: float) -> dict:
    """The Retry-After header every 429 carries: whole seconds, rounded up, at least one."""
    return {"Retry-After": str(max(1, int(seconds) + 1))}


def request_id() -> str:
    """This request's id: the one its hooks gave it, else the one it got at the door."""
    if "request_id" not in g:
        g.request_id = request.environ.get(REQUEST_ID_KEY) or secrets.token_hex(8)
    return g.request_id


def render_error(status: int, message: str | None = None, reference: str | None = None, *, for_nobody=False):
    """The error page in the usual layout: the header, the role's navigation and the account
    menu of whoever is signed in. `for_nobody` leaves out anyone's parts, for failures where
    the user cannot be loaded safely (the database or session store away); a layout that
    cannot be rendered for the person falls back to that, then to a plain page."""
    context = dict(
        status=status,
        message=message or MESSAGES.get(status, "Something went wrong."),
        reference=reference,
    )
    template = "errors/_error.html" if wants_fragment() else "errors/error.html"
    try:
        _null_session_if_unopened()
        if not for_nobody:
            try:
                return render_template(template, **context, **_layout(nobody=False)), status
            except Exception:  # loading the person failed: the same page without their parts
                db.session.rollback()
                current_app.logger.exception("the error page could not show the account menu (reference %s)",
                                             reference)
        return render_template(template, **context, **_layout(nobody=True)), status
    except Exception:  # the page must still go out, if plainer
        current_app.logger.exception("the error page could not be rendered (reference %s)", reference)
        return plain_page(**context), status


def _layout(*, nobody: bool) -> dict:
    """What the layout may use on an error page. Nobody's parts when asked, when the request has
    no session (the store down, a static path) or when the signed-in session is over (a path
    that matched no view never passed the Log In gate). Only a signed-in person's page carries
    the CSRF token: an anonymous visitor's error page creates no session."""
    from portal import auth_state  # it needs portal.sessions, which needs this module

    nobody = nobody or isinstance(session._get_current_object(), NullSession)
    if not nobody and request.endpoint is None and current_user.is_authenticated:
        nobody = auth_state.session_expired(clock.now()) is not None
    if nobody:
        g._login_user = current_app.login_manager.anonymous_user()  # what current_user reads
    return {"sessionless": not current_user.is_authenticated}


def _null_session_if_unopened() -> None:
    """Opening the session raised (something other than the store's own failures, which the
    session interface answers itself): give the request Flask's null session, which nothing can
    write, so the layout (who is signed in: nobody) and the response's finish still work.
    Flask 3.1 keeps the request's session in `RequestContext._session`."""
    ctx = request_ctx._get_current_object()
    if getattr(ctx, "_session", False) is None:
        ctx._session = current_app.session_interface.make_null_session(current_app)


def plain_page(status: int, message: str, reference: str | None = None) -> str:
    """The error page without templates (or anything a template might need)."""
    quoted = (f"<p>If this keeps happening, contact support and quote reference <strong>{escape(reference)}"
              "</strong>.</p>") if reference else ""
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{status}</title><link rel="stylesheet" href="/static/css/portal.css"></head><body>'
            f'<main id="main"><section class="card narrow error-page" id="error" role="alert"><h1>{escape(message)}'
            f'</h1>{quoted}<p><a href="/">Go to the dashboard</a></p></section></main></body></html>')


def session_store_unavailable(error: BaseException):
    """The 503 "briefly unavailable" page for a request whose session store failed (logged and
    counted). Its layout has nothing user-specific: no session, so nobody is signed in."""
    reference = request_id()
    current_app.logger.warning("session store unavailable (reference %s): %s", reference, type(error).__name__)
    metrics.session_store_failed()
    body, status = render_error(503, reference=reference, for_nobody=True)
    return body, status, {"Retry-After": str(UNAVAILABLE_RETRY_SECONDS)}


def replace_with_unavailable(response, error: BaseException) -> None:
    """The session could not be saved after the response was made: send the 503 page instead
    (a redirect or an HTMX instruction would lead on as if the step had been kept)."""
    body, status, headers = session_store_unavailable(error)
    response.set_data(body)
    response.status_code = status
    response.mimetype = "text/html"
    for name in [name for name in response.headers.keys() if name == "Location" or name.startswith("HX-")]:
        del response.headers[name]
    response.headers.update(headers)


# The pages nginx answers with itself (deploy/nginx.conf: error_page), rendered from the same
# template into static/errors/ by `flask error-pages`; 502 and 504 get the 503 page there.
PROXY_PAGES = (400, 413, 429, 503)


def proxy_pages(app: Flask) -> dict[str, str]:
    """The file name and HTML of each page in PROXY_PAGES (no reference: the portal never saw
    those requests)."""
    # A static path: rendering opens no session, whatever the session store.
    with app.test_request_context(f"{app.static_url_path}/errors/"):
        layout = _layout(nobody=True)
        return {f"{status}.html": render_template("errors/error.html", status=status, message=MESSAGES[status],
                                                  reference=None, **layout) for status in PROXY_PAGES}


def init_app(app: Flask) -> None:
    app.wsgi_app = LastResort(app, app.wsgi_app)

    @app.cli.command("error-pages")
    def write_proxy_pages():
        """Write the error pages nginx serves itself into static/errors/ (after changing PORTAL_NAME)."""
        import click

        directory = Path(app.static_folder) / "errors"
        directory.mkdir(exist_ok=True)
        for name, html in proxy_pages(app).items():
            (directory / name).write_text(html + "\n", encoding="utf-8")
            click.echo(directory / name)

    def log_exception(exc_info) -> None:
        """Flask's line for an exception its handlers did not catch (one raised while opening
        the session or finishing the response): method, masked path and the request's id."""
        app.logger.error("unhandled error on %s %s (reference %s)", request.method, mask_path(request.path),
                         request_id(), exc_info=exc_info)

    app.log_exception = log_exception

    @app.teardown_request
    def keep_request_id(_error=None):
        if "request_id" in g:  # LastResort logs an escaping exception under the id the request had
            request.environ[REQUEST_ID_KEY] = g.request_id

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        from flask_login import current_user

        body, status = render_error(
            400, "This form has expired or was not sent from the portal. Reload the page and try again.")
        if not current_user.is_authenticated and is_htmx():
            # Usually the session ended in another tab: still a 400, but send the page to Log In.
            return body, status, {"HX-Redirect": url_for("auth.login")}
        return body, status

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if error.code and error.code >= 500:
            return server_error(error)
        response = render_error(error.code or 400)
        if error.code == 405 and getattr(error, "valid_methods", None):
            return response[0], response[1], {"Allow": ", ".join(error.valid_methods)}
        return response

    @app.errorhandler(OperationalError)
    def database_unavailable(error):
        db.session.rollback()
        reference = request_id()
        app.logger.error("database unavailable (reference %s): %s", reference, type(error).__name__)
        return render_error(503, reference=reference, for_nobody=True)

    @app.errorhandler(RedisError)
    def redis_unavailable(error):
        """A Redis call inside a view failed (the session store mid-request, say): nothing the
        request had not committed is kept, and the user gets the 503 page."""
        db.session.rollback()
        reference = request_id()
        app.logger.error("redis unavailable (reference %s): %s", reference, type(error).__name__)
        body, status = render_error(503, reference=reference, for_nobody=True)
        return body, status, {"Retry-After": str(UNAVAILABLE_RETRY_SECONDS)}

    @app.errorhandler(Exception)
    def server_error(error):
        db.session.rollback()
        status = error.code if isinstance(error, (InternalServerError, ServiceUnavailable)) else 500
        reference = request_id()
        if getattr(error, "original_exception", None) is None:  # else Flask logged it (log_exception)
            app.logger.exception("unhandled error on %s %s (reference %s)", request.method, mask_path(request.path),
                                 reference)
        return render_error(status, reference=reference)


class LastResort:
    """The outermost WSGI layer. It gives each request an id at the door, and answers an
    exception that escapes Flask (an error handler that failed, a fault in a WSGI layer) with
    the plain 500 page and that id in X-Request-ID, logged with the method and the path (link
    tokens masked): never gunicorn's bare "Internal Server Error" that nobody can trace.
    Where Flask itself would let the exception through (testing, debug), so does this, after
    logging it."""

    def __init__(self, app: Flask, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        environ.setdefault(REQUEST_ID_KEY, secrets.token_hex(8))
        try:
            return self.wsgi_app(environ, start_response)
        except Exception:
            reference = environ[REQUEST_ID_KEY]
            self.app.logger.exception(
                "unhandled error outside the app on %s %s (reference %s)", environ.get("REQUEST_METHOD", "-"),
                mask_path(environ.get("PATH_INFO", "")), reference, extra={"request_id": reference})
            propagate = self.app.config.get("PROPAGATE_EXCEPTIONS")
            if propagate or (propagate is None and (self.app.testing or self.app.debug)):
                raise
            body = plain_page(500, MESSAGES[500], reference).encode()
            start_response("500 INTERNAL SERVER ERROR", [
                ("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"), ("X-Request-ID", reference)])
            return [body]
