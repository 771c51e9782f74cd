from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from portal import audit, clock, limits
from portal.access import public, safe_next, start_session_clock
from portal.accounts import invitations, password_reset, users
from portal.accounts.errors import AccountError, WeakPassword
from portal.auth import bp, pending
from portal.auth.forms import CodeForm, ForgotPasswordForm, LoginForm, NewPasswordForm, ResendForm
from portal.delivery import DeliveryError
from portal.errors import retry_after
from portal.extensions import db
from portal.htmx import hx_redirect, render, wants_fragment
from portal.mfa import codes
from portal.mfa import login as mfa_login
from portal.mfa import policy
from portal.mfa.errors import DeliveryFailed, MfaError, SendThrottled
from portal.security import reauth
from portal.sessions import renew_session

GENERIC_LOGIN_ERROR = "The email or password is incorrect, or the account cannot sign in."


def complete_login(user, next_url: str | None = None):
    """Sign the user in fully, in a new session id, and open the dashboard (or `next`)."""
    renew_session()
    login_user(user)
    start_session_clock(clock.now())
    return hx_redirect(safe_next(next_url) or url_for("dashboard.index"))


@bp.route("/login", methods=["GET", "POST"])
@public
@limits.login_per_address
@limits.login_per_account
def login():
    """Show Log In and check an email and password."""
    next_url = safe_next(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(next_url or url_for("dashboard.index"), code=303)
    form = LoginForm()
    if form.validate_on_submit():
        now = clock.now()
        user = users.authenticate(form.email.data, form.password.data, now=now)
        if user is None:
            known = users.find_by_email(form.email.data)
            audit.record("login.password_failed", outcome="failure", subject=known, now=now,
                         detail={} if known else {"reason": "unknown email"}, commit=True)
            return render_template("auth/login.html", form=form, error=GENERIC_LOGIN_ERROR, next_url=next_url), 401
        # Committed before a code is sent (a failed send rolls back its own work); without a
        # method it goes out with the login's own commit below.
        audit.record("login.password_succeeded", subject=user, actor=user, now=now)
        if user.mfa is not None:
            method = user.mfa.method
            state = pending.start(user, next_url=next_url, now=now)
            db.session.commit()
            if method != "totp":
                try:
                    mfa_login.send_login_code(user, challenge=state["challenge"], now=now)
                except (SendThrottled, DeliveryFailed) as error:
                    flash(str(error), "error")
            return redirect(url_for("auth.verify_code"), code=303)
        if policy.must_enroll(user):
            # The password was just entered: it counts as the Security tab's confirmation.
            renew_session()
            login_user(user)
            start_session_clock(now)
            reauth.mark_fresh(now, new_session_id=False)
            db.session.commit()
            return redirect(url_for("security.show_security"), code=303)
        renew_session()
        login_user(user)
        start_session_clock(now)
        audit.record("login.succeeded", actor=user, subject=user, now=now, detail={"method": None}, commit=True)
        return redirect(next_url or url_for("dashboard.index"), code=303)
    status = 400 if form.errors else 200
    return render_template("auth/login.html", form=form, next_url=next_url,
                           logged_out=request.args.get("logged_out")), status


def _code_page_context(user, state, now, form=None, error=None, status_message=None):
    enrollment = user.mfa
    target = enrollment.phone_e164 if enrollment.method == "sms" else user.email
    by_message = enrollment.method != "totp"
    available_at, code_sent = codes.send_status(user, enrollment.method, target, now, purpose="login",
                                                challenge=state["challenge"]) if by_message else (None, False)
    return dict(
        form=form or CodeForm(),
        resend_form=ResendForm(),
        method=user.mfa.method,
        destination=mfa_login.destination(user),
        error=error,
        status_message=status_message,
        resend_wait=int((available_at - now).total_seconds()) + 1 if available_at else 0,
        minutes=int(current_app.config["MFA_CODE_TTL"].total_seconds() // 60),
        code_sent=code_sent,
    )


def _no_pending(expired: bool):
    if expired:
        flash("Your sign-in took too long and was cancelled for your security. Log In again.", "error")
    else:
        flash("Log In first.", "info")
    return hx_redirect(url_for("auth.login"))


@bp.route("/login/code", methods=["GET", "POST"])
@public
@limits.code_per_address
def verify_code():
    """Ask for the code that completes Log In, and check it."""
    now = clock.now()
    user, state, expired = pending.current(now)
    if user is None:
        return _no_pending(expired)
    form = CodeForm()
    if request.method != "POST":
        return render_template("auth/verify_code.html", **_code_page_context(user, state, now))
    status, headers = 400, {}
    if form.validate():
        try:
            mfa_login.verify_login_code(user, form.code.data, challenge=state["challenge"], now=now, completes_login=True)
        except MfaError as error:
            form.code.errors.append(str(error))
            status = error.status
            if error.status == 429 and getattr(error, "retry_after", None) is not None:
                headers = retry_after(error.retry_after.total_seconds())
        else:
            return complete_login(user, state.get("next"))
    page = render("auth/verify_code.html", "auth/_code_form.html", target="code-step",
                  **_code_page_context(user, state, now, form=form))
    return page, status, headers


@bp.route("/login/code/resend", methods=["POST"])
@public
@limits.code_per_address
def resend_code():
    """Send a new code (the "click here" link); the previous code stops working."""
    now = clock.now()
    user, state, expired = pending.current(now)
    if user is None:
        return _no_pending(expired)
    if user.mfa.method == "totp":
        message, category, status = "Authenticator Apps make their own codes: open your app for the current one.", "error", 400
    else:
        try:
            mfa_login.send_login_code(user, challenge=state["challenge"], now=now, resend=True)
        except MfaError as error:
            message, category, status = str(error), "error", error.status
        else:
            message, category, status = f"A new code was sent to {mfa_login.destination(user)}. Earlier codes no longer work.", "success", 200
    if wants_fragment("code-status"):
        context = _code_page_context(user, state, now, status_message=(category, message))
        context["resend_fragment"] = True
        context["oob_form"] = status == 200  # a fresh, empty code form replaces any old error
        response = current_app.make_response((render_template("auth/_code_status.html", **context), status))
        if status in (429, 503):
            response.headers.update(retry_after(context["resend_wait"] - 1))
        return response
    flash(message, category)
    return redirect(url_for("auth.verify_code"), code=303)


@bp.route("/logout", methods=["POST"])
@public
def logout():
    """End the session on the server and in the browser (also a half-finished Log In)."""
    if current_user.is_authenticated:
        audit.record("logout", actor=current_user, subject=current_user, commit=True)
    logout_user()
    session.clear()
    response = redirect(url_for("auth.login", logged_out=1), code=303)
    response.headers["Clear-Site-Data"] = '"cache", "storage"'
    return response


@bp.route("/logout/everywhere", methods=["POST"])
def logout_everywhere():
    """End every session of this user, on every device, including this one."""
    user = current_user._get_current_object()
    users.end_all_sessions(user)
    audit.record("logout.everywhere", actor=user, subject=user)
    from portal.extensions import db

    db.session.commit()
    logout_user()
    session.clear()
    response = redirect(url_for("auth.login", logged_out="everywhere"), code=303)
    response.headers["Clear-Site-Data"] = '"cache", "storage"'
    return response


@bp.route("/forgot-password", methods=["GET", "POST"])
@public
@limits.reset_per_address
@limits.reset_per_account
def forgot_password():
    """Email a reset link; answer the same whether or not the account exists."""
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        try:
            password_reset.request_reset(form.email.data, now=clock.now())
        except DeliveryError:
            # The answer must not reveal that the account exists; the failure is logged.
            current_app.logger.warning("password reset email could not be sent")
        return render_template("auth/forgot_password.html", form=form, sent=True)
    status = 400 if form.errors else 200
    return render_template("auth/forgot_password.html", form=form, sent=False), status


@bp.route("/reset-password/<token>", methods=["GET", "POST"])
@public
@limits.link_per_address
def reset_password(token):
    """Let the holder of a reset link choose a new password."""
    try:
        password_reset.load(token, now=clock.now())
    except AccountError as error:
        return render_template("auth/link_problem.html", message=str(error)), 400
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            password_reset.reset_password(token, form.password.data, now=clock.now())
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
@limits.link_per_address
def accept_invitation(token):
    """Let an invited person set a password, which verifies their email."""
    try:
        invitation = invitations.load(token, now=clock.now())
    except AccountError as error:
        return render_template("auth/link_problem.html", message=str(error)), 400
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            invitations.accept(token, form.password.data, now=clock.now())
        except WeakPassword as error:
            form.password.errors.append(str(error))
        except AccountError as error:
            return render_template("auth/link_problem.html", message=str(error)), 400
        else:
            flash("Your account is ready. Log In with your email and new password.", "success")
            return redirect(url_for("auth.login"), code=303)
    status = 400 if form.errors else 200
    return render_template("auth/accept_invitation.html", form=form, invitation=invitation, token=token), status
