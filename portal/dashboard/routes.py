from flask import render_template
from flask_login import current_user

from portal.dashboard import bp
from portal.enforcement import review
from portal.mfa import methods


@bp.route("/")
def index():
    """Show the signed-in user's dashboard: their own MFA state and, for admins, the practice's coverage."""
    user = current_user._get_current_object()
    method = methods.of(user.mfa)
    coverage = review.counts(user.practice_id).coverage if user.role == "practice_admin" else None
    return render_template("dashboard/index.html", user=user, has_mfa=method is not None, method=method,
                           destination=method.masked_destination(user, user.mfa) if method else None,
                           coverage=coverage)
