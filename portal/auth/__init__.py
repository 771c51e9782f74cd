"""Log In, logout, invitations and password reset; and the gate every request passes."""

from flask import Blueprint

bp = Blueprint("auth", __name__)

from portal.auth import routes  # noqa: E402,F401
