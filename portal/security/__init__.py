"""Account Settings | Security."""

from flask import Blueprint

bp = Blueprint("security", __name__, url_prefix="/account")

from portal.security import routes  # noqa: E402,F401
