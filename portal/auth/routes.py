from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from portal.access import public, safe_next
from portal.accounts import invitations, password_reset, users
from portal.accounts.errors import AccountError, WeakPassword
from portal.auth import bp
from portal.auth.forms import ForgotPasswordForm, LoginForm, NewPasswordForm
from portal.delivery import DeliveryError
from portal.models.base import utcnow
from portal.sessions import regenerate_session_id

GENERIC_LOGIN_ERROR = "The email or password is incorrect, or the account cannot sign in."


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    """Show Log In and check an email and password."""
    next_url = safe_next(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(next_url or url_for("dashboard.index"), code=303)
    form = LoginForm()
    if form.validate_on_submit():
        user = users.authenticate(form.email.data, form.password.data)
        if user is not None:
            regenerate_session_id(current_app, session)
            login_user(user)
            return redirect(next_url or url_for("dashboard.index"), code=303)
        return render_template("auth/login.html", form=form, error=GENERIC_LOGIN_ERROR, next_url=next_url), 401
    status = 400 if form.errors else 200
    return render_template("auth/login.html", form=form, next_url=next_url,
                           logged_out=request.args.get("logged_out") == "1"), status


@bp.route("/logout", methods=["POST"])
def logout():
    """End the session on the server and in the browser."""
    logout_user()
    session.clear()
    response = redirect(url_for("auth.login", logged_out=1), code=303)
    response.headers["Clear-Site-Data"] = '"cache", "storage"'
    return response


@bp.route("/forgot-password", methods=["GET", "POST"])
@public
def forgot_password():
    """Email a reset link; answer the same whether or not the account exists."""
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        try:
            password_reset.request_reset(form.email.data, now=utcnow())
        except DeliveryError:
            # The answer must not reveal that the account exists; the failure is logged.
            current_app.logger.warning("password reset email could not be sent")
        return render_template("auth/forgot_password.html", form=form, sent=True)
    status = 400 if form.errors else 200
    return render_template("auth/forgot_password.html", form=form, sent=False), status


@bp.route("/reset-password/<token>", methods=["GET", "POST"])
@public
def reset_password(token):
    """Let the holder of a reset link choose a new password."""
    try:
        password_reset.load(token, now=utcnow())
    except AccountError as error:
        return render_template("auth/link_problem.html", message=str(error)), 400
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            password_reset.reset_password(token, form.password.data, now=utcnow())
        except WeakPassword as error:
            form.password.errors.append(str(error))
        except AccountError as error:
            return render_template("auth/link_problem.html", message=str(error)), 400
        else:
            if current_user.is_authenticated:
                logout_user()
                session.clear()
            flash("Your password has been changed. Log In with your new password.", "success")
            return redirect(url_for("auth.login"), code=303)
    status = 400 if form.errors else 200
    return render_template("auth/reset_password.html", form=form, token=token), status


@bp.route("/invitations/<token>", methods=["GET", "POST"])
@public
def accept_invitation(token):
    """Let an invited person set a password, which verifies their email."""
    try:
        invitation = invitations.load(token, now=utcnow())
    except AccountError as error:
        return render_template("auth/link_problem.html", message=str(error)), 400
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            invitations.accept(token, form.password.data, now=utcnow())
        except WeakPassword as error:
            form.password.errors.append(str(error))
        except AccountError as error:
            return render_template("auth/link_problem.html", message=str(error)), 400
        else:
            flash("Your account is ready. Log In with your email and new password.", "success")
            return redirect(url_for("auth.login"), code=303)
    status = 400 if form.errors else 200
    return render_template("auth/accept_invitation.html", form=form, invitation=invitation, token=token), status
