"""The restricted support area: find users, clear MFA, set practice requirements, answer requests.

Hidden (404) from everyone but support staff, optionally limited to SUPPORT_ALLOWED_NETWORKS,
and every page needs a password-and-code confirmation no older than SUPPORT_CONFIRM_TTL.
"""

from flask import Blueprint

bp = Blueprint("support", __name__, url_prefix="/support")

from portal.support import routes  # noqa: E402,F401
