from flask import redirect, render_template, url_for

from portal.security import bp


@bp.route("/")
def account_settings():
    """Open Account Settings on its Security tab."""
    return redirect(url_for("security.show_security"), code=303)


@bp.route("/security")
def show_security():
    """Show the Security tab of Account Settings."""
    return render_template("security/show_security.html")
