"""The dashboard every user lands on after Log In."""

from flask import Blueprint

bp = Blueprint("dashboard", __name__)

from portal.dashboard import routes  # noqa: E402,F401
