"""App-wide error pages: generic text, a reference id for support, HTMX-aware."""

from __future__ import annotations

import secrets

from flask import Flask, g, render_template, url_for
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable

from portal.extensions import db
from portal.htmx import is_htmx, wants_fragment

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


def retry_after(seconds: float) -> dict:
    """The Retry-After header every 429 carries: whole seconds, rounded up, at least one."""
    return {"Retry-After": str(max(1, int(seconds) + 1))}


def render_error(status: int, message: str | None = None, reference: str | None = None):
    context = dict(
        status=status,
        message=message or MESSAGES.get(status, "Something went wrong."),
        reference=reference,
    )
    template = "errors/_error.html" if wants_fragment() else "errors/error.html"
    return render_template(template, **context), status


def init_app(app: Flask) -> None:
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
        reference = g.get("request_id") or secrets.token_hex(8)
        app.logger.error("database unavailable (reference %s): %s", reference, type(error).__name__)
        return render_error(503, reference=reference)

    @app.errorhandler(Exception)
    def server_error(error):
        db.session.rollback()
        status = error.code if isinstance(error, (InternalServerError, ServiceUnavailable)) else 500
        reference = g.get("request_id") or secrets.token_hex(8)
        app.logger.exception("unhandled error (reference %s)", reference)
        return render_error(status, reference=reference)
