"""The practice admin's area: the practice's users and invitations."""

from flask import Blueprint

bp = Blueprint("practice", __name__, url_prefix="/practice")

from portal.practice import routes  # noqa: E402,F401
