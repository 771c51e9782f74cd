"""Forms arrive in the shape the portal's pages send, or not at all.

Every form of the portal is a set of single text fields. A body with a file part (multipart
upload), with a field sent more than once, or in JSON is not something a page of the portal
sends: it gets the usual 400 page before anything else runs (CSRF check, Log In gate, view, service),
so nothing is read from it and nothing is written. One check for the whole app covers every
form alike: the WTForms fields, the fields read straight from `request.form` (`device`,
`required`), the CSRF token itself, and any form added later.

JSON would otherwise be read as the form (Flask-WTF does so), with numbers, true/false,
lists and objects where every field expects one piece of text, and lists slipping past the
repeated-field rule.
"""

from __future__ import annotations

from flask import Flask, abort, request
from flask_login import current_user

# Methods whose body a view may read as a form.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def malformed() -> bool:
    """True if the body is JSON, or its form has a file part or a field sent more than once."""
    if request.is_json or request.files:
        return True
    return any(len(values) > 1 for values in request.form.listvalues())


def init_app(app: Flask) -> None:
    """Register the check; call it before CSRFProtect's, so a repeated or file-borne
    csrf_token gets this 400 too, whatever Flask-WTF would make of it."""

    @app.before_request
    def refuse_malformed_forms():
        if request.method not in BODY_METHODS or request.routing_exception is not None:
            return None  # nothing reads the body: a wrong address or method keeps its 404 or 405
        if request.blueprint == "support" and not (current_user.is_authenticated and current_user.role == "support"):
            return None  # the Log In gate answers 404: the support area does not admit it exists
        if malformed():
            abort(400)
        return None
