from flask import render_template
from flask_login import current_user

from portal.dashboard import bp


@bp.route("/")
def index():
    """Show the signed-in user's dashboard."""
    return render_template("dashboard/index.html", user=current_user, has_mfa=current_user.mfa is not None)
