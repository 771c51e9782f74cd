from functools import wraps

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user

from portal import auth_state, clock, limits
from portal.access import public, safe_next
from portal.accounts import invitations, password_reset, signin
from portal.accounts import lost_access as lost_access_service
from portal.accounts.errors import AccountError, WeakPassword
from portal.auth import bp
from portal.auth.forms import ForgotPasswordForm, LoginForm, NewPasswordForm
from portal.delivery import DeliveryError
from portal.errors import retry_after
from portal.forms import CodeForm, ResendForm
from portal.htmx import hx_redirect, render, wants_fragment
from portal.mfa import login as code_step
from portal.mfa.errors import MfaError, SendThrottled

# The address of an invitation just accepted, to fill in Log In (kept in the session, never in a URL).
PREFILL_EMAIL = "login_email"
GENERIC_LOGIN_ERROR = "The email or password is incorrect, or the account cannot Log In."


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
    if request.method == "GET" and not form.email.data:
        form.email.data = session.pop(PREFILL_EMAIL, None) or None  # just accepted an invitation
    if form.validate_on_submit():
        result = signin.log_in(form.email.data, form.password.data, next_url=next_url, now=clock.now())
        if result.next is signin.Next.FAILED:
            return render_template("auth/login.html", form=form, error=GENERIC_LOGIN_ERROR, next_url=next_url), 401
        if result.problem:
            flash(result.problem, "error")
        destinations = {
            signin.Next.CODE_NEEDED: url_for("auth.verify_code"),
            signin.Next.MUST_ENROLL: url_for("security.show_security"),
            signin.Next.SIGNED_IN: next_url or url_for("dashboard.index"),
        }
        return redirect(destinations[result.next], code=303)
    status = 400 if form.errors else 200
    return render_template("auth/login.html", form=form, next_url=next_url,
                           logged_out=request.args.get("logged_out")), status


def _code_page_context(user, state, now, form=None, status_message=None):
    return dict(
        form=form or CodeForm(),
        resend_form=ResendForm(),
        code_page=code_step.code_page(user, challenge=state["challenge"], now=now),
        status_message=status_message,
    )


def pending_login_required(view):
    """Run the view with the pending Log In's user and state; without one, back to Log In."""

    @wraps(view)
    def wrapped():
        now = clock.now()
        user, state, expired = auth_state.pending_login(now)
        if user is None:
            if expired:
                flash("Your Log In took too long and was cancelled for your security. Log In again.", "error")
            else:
                flash("Log In first.", "info")
            return hx_redirect(url_for("auth.login"))
        return view(user, state, now)

    return wrapped


@bp.route("/login/code", methods=["GET", "POST"])
@public
@limits.code_per_address
@pending_login_required
def verify_code(user, state, now):
    """Ask for the code that completes Log In, and check it."""
    form = CodeForm()
    if request.method != "POST":
        return render_template("auth/verify_code.html", **_code_page_context(user, state, now))
    status, headers = 400, {}
    if form.validate():
        try:
            signin.log_in_with_code(user, state, form.code.data, now=now)
        except MfaError as error:
            form.code.errors.append(str(error))
            status = error.status
            if error.status == 429 and getattr(error, "retry_after", None) is not None:
                headers = retry_after(error.retry_after.total_seconds())
        else:
            return hx_redirect(safe_next(state.get("next")) or url_for("dashboard.index"))
    page = render("auth/verify_code.html", "auth/_code_form.html", target="code-step",
                  **_code_page_context(user, state, now, form=form))
    return page, status, headers


@bp.route("/login/code/resend", methods=["POST"])
@public
@limits.code_per_address
@pending_login_required
def resend_code(user, state, now):
    """Send a new code (the "click here" link); the previous code stops working."""
    try:
        code_step.send_login_code(user, challenge=state["challenge"], now=now, resend=True)
    except MfaError as error:
        # A wait is neutral information, not an error.
        message, category, status = str(error), "info" if isinstance(error, SendThrottled) else "error", error.status
    else:
        message, category, status = (f"A new code was sent to {code_step.destination(user)}. "
                                      "Earlier codes no longer work."), "success", 200
    if wants_fragment("code-status"):
        context = _code_page_context(user, state, now, status_message=(category, message))
        context["resend_fragment"] = True
        context["oob_form"] = status == 200  # a fresh, empty code form replaces any old error
        response = current_app.make_response((render_template("auth/_code_status.html", **context), status))
        if status in (429, 503):
            response.headers.update(retry_after(context["code_page"].resend_wait - 1))
        return response
    flash(message, category)
    return redirect(url_for("auth.verify_code"), code=303)


@bp.route("/login/lost-access", methods=["GET", "POST"])
@public
@limits.lost_access_per_address
def lost_access():
    """Say what to do without one's MFA method, and let the person ask support to clear it."""
    form = ResendForm()  # a button with no fields, CSRF-protected
    if request.method == "POST":
        if not form.validate_on_submit():
            return render_template("auth/lost_access.html", form=form, sent=False), 400
        now = clock.now()
        lost_access_service.request_clear(_asking_user(now), now=now)
        return render_template("auth/lost_access.html", form=form, sent=True)
    return render_template("auth/lost_access.html", form=form, sent=False)


def _asking_user(now):
    """Who may ask: someone who just entered their password (the code step of Log In), or a
    logged-in user with a fresh password (the Security tab). Anyone else gets the same answer."""
    user, _state, _expired = auth_state.pending_login(now)
    if user is not None:
        return user
    if current_user.is_authenticated and auth_state.proven_within(auth_state.PASSWORD, now):
        return current_user._get_current_object()
    return None


@bp.route("/logout", methods=["POST"])
@public
def logout():
    """End the session on the server and in the browser (also a half-finished Log In)."""
    signin.log_out(current_user._get_current_object() if current_user.is_authenticated else None)
    response = redirect(url_for("auth.login", logged_out=1), code=303)
    response.headers["Clear-Site-Data"] = '"cache", "storage"'
    return response


@bp.route("/logout/everywhere", methods=["POST"])
def logout_everywhere():
    """End every session of this user, on every device, including this one."""
    signin.log_out_everywhere(current_user._get_current_object(), now=clock.now())
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


def _set_password_from_link(token: str, *, load, complete, template: str, done: str, after=None):
    """A page reached by an emailed link that sets a password: check the link, then the form.

    `load(token, now=)` and `complete(token, password, now=)` are the link's service calls;
    a broken, used or expired link gets the link-problem page.
    """
    try:
        record = load(token, now=clock.now())
    except AccountError as error:
        return render_template("auth/link_problem.html", message=str(error)), error.status
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            complete(token, form.password.data, now=clock.now())
        except WeakPassword as error:
            form.password.errors.append(str(error))
        except AccountError as error:
            return render_template("auth/link_problem.html", message=str(error)), error.status
        else:
            if after is not None:
                after()
            session[PREFILL_EMAIL] = getattr(record, "email", None) or ""
            flash(done, "success")
            return redirect(url_for("auth.login"), code=303)
    status = 400 if form.errors else 200
    return render_template(template, form=form, record=record, token=token), status


@bp.route("/reset-password/<token>", methods=["GET", "POST"])
@public
@limits.link_per_address
def reset_password(token):
    """Let the holder of a reset link choose a new password (every session ends)."""
    return _set_password_from_link(token, load=password_reset.load, complete=password_reset.reset_password,
                                   template="auth/reset_password.html", after=auth_state.end_session,
                                   done="Your password has been changed. Log In with your new password.")


@bp.route("/invitations/<token>", methods=["GET", "POST"])
@public
@limits.link_per_address
def accept_invitation(token):
    """Let an invited person set a password, which verifies their email."""
    return _set_password_from_link(token, load=invitations.load, complete=invitations.accept,
                                   template="auth/accept_invitation.html",
                                   done="Your account is ready. Log In with your email and new password.")
