from flask import render_template

from portal.access import public
from portal.delivery import outbox
from portal.dev import bp


@bp.route("/outbox")
@public
def list_outbox():
    """List captured messages, newest first (development and tests only)."""
    return render_template("dev/list_outbox.html", messages=outbox.latest())
