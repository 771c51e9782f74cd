from flask import current_app, flash, redirect, request, session, url_for
from flask_login import current_user, login_user, logout_user

from portal import audit, clock, limits
from portal.access import start_session_clock
from portal.accounts import lockout, passwords
from portal.auth import pending as pending_login
from portal.errors import retry_after as retry_after_header
from portal.htmx import hx_redirect, is_htmx, render
from portal.mfa import codes, policy
from portal.mfa import enrollment as mfa_enrollment
from portal.mfa import login as mfa_login
from portal.mfa.errors import DeliveryFailed, EnrollmentExpired, MfaError, SendThrottled
from portal.mfa.masking import mask_destination
from portal.mfa.phones import mask_phone
from portal.models.mfa import METHOD_LABELS
from portal.security import bp, reauth
from portal.security.forms import ChooseDeviceForm, CodeForm, ConfirmPasswordForm, PhoneNumberForm, ResendForm
from portal.sessions import renew_session

CHALLENGE_KEY = "enroll_challenge"
STEPS = {"sms_phone", "sms_code", "totp_qr", "totp_code"}


def _panel_context(now, *, device=None, step=None, error=None, password_form=None, phone_form=None,
                   code_form=None, status_message=None):
    user = current_user
    context = dict(
        fresh=reauth.is_fresh(now),
        password_form=password_form or ConfirmPasswordForm(),
        must_enroll=policy.must_enroll(user),
        required=policy.is_required(user),
        is_support=user.role == "support",
        error=error,
    )
    if not context["fresh"]:
        return context
    enrollment = user.mfa
    pending = mfa_enrollment.pending_for(user, now)
    if step is None:
        if device == "sms":
            step = "sms_phone"
        elif pending is not None and pending.method == "sms" and device in (None, "sms"):
            step = "sms_code"
        elif pending is not None and pending.method == "totp" and device in (None, "totp"):
            step = "totp_qr"
    if step in ("sms_code", "totp_qr", "totp_code") and (pending is None or pending.method != step.split("_")[0]):
        step = None
    available_at = codes.resend_available_at(user, "sms", pending.phone_e164, now, purpose="enroll",
                                             challenge=session.get(CHALLENGE_KEY)) if step == "sms_code" else None
    context.update(
        enrollment=enrollment,
        method_label=enrollment.label if enrollment else None,
        destination=mask_destination(enrollment.method, email=user.email, phone_e164=enrollment.phone_e164) if enrollment else None,
        methods=[(method, METHOD_LABELS[method]) for method in policy.allowed_methods(user)],
        email_verified=user.email_verified_at is not None,
        step=step,
        setup=mfa_enrollment.totp_setup(user, pending) if step == "totp_qr" else None,
        pending_phone=mask_phone(pending.phone_e164) if step == "sms_code" else None,
        phone_form=phone_form or PhoneNumberForm(),
        code_form=code_form or CodeForm(),
        resend_form=ResendForm(),
        choose_form=ChooseDeviceForm(),
        resend_wait=int((available_at - now).total_seconds()) + 1 if available_at else 0,
        status_message=status_message,
        reauth_minutes=max(1, reauth.seconds_left(now) // 60),
        minutes=int(current_app.config["MFA_CODE_TTL"].total_seconds() // 60),
    )
    return context


def _panel(status=200, retry_after=None, **kwargs):
    """The Security tab (or its panel for HTMX); every 429 says when to try again."""
    context = _panel_context(clock.now(), **kwargs)
    response = render("security/show_security.html", "security/_panel.html", target="security-panel", **context)
    headers = {}
    if status == 429:
        headers = retry_after_header(retry_after.total_seconds() if retry_after is not None else 60)
    return response, status, headers


def _after_post(device=None, step=None, **kwargs):
    """POST -> 303 -> GET without JavaScript; the panel in place for HTMX."""
    if is_htmx():
        return _panel(device=device, step=step, **kwargs)
    return redirect(url_for("security.show_security", device=device, step=step), code=303)


def _stale():
    """The password confirmation is missing or older than allowed: ask again."""
    flash("For your security, re-enter your password to continue.", "info")
    if is_htmx():
        return _panel(401)
    return redirect(url_for("security.show_security"), code=303)


def _renew_login(user, now, *, keep_fresh: bool) -> None:
    """The session version changed with the MFA change: renew this session's login."""
    renew_session()
    login_user(user)
    start_session_clock(now)
    if keep_fresh:
        reauth.mark_fresh(now, new_session_id=False)


@bp.route("/")
def account_settings():
    """Open Account Settings on its Security tab."""
    return redirect(url_for("security.show_security"), code=303)


@bp.route("/security")
def show_security():
    """Show the Security tab: password re-entry, current MFA state and Choose MFA Device."""
    device = request.args.get("device")
    step = request.args.get("step")
    return _panel(device=device if device in METHOD_LABELS else None, step=step if step in STEPS else None)


@bp.route("/security/confirm-password", methods=["POST"])
@limits.code_per_address
def confirm_password():
    """Check the re-entered password; it stays fresh for a few minutes."""
    form = ConfirmPasswordForm()
    if not form.validate_on_submit():
        return _panel(400, password_form=form)
    now = clock.now()
    user = current_user._get_current_object()
    correct = passwords.verify_password(user.password_hash, form.password.data)
    if lockout.password_locked(user, now):
        form.password.errors.append("Too many incorrect passwords. For your security, try again in 15 minutes.")
        return _panel(429, retry_after=user.password_locked_until - now, password_form=form)
    if not correct:
        audit.record("reauth.failed", outcome="failure", actor=user, subject=user, now=now,
                     detail={"where": "security"}, commit=True)
        lockout.record_password_failure(user, now)
        form.password.errors.append("That password is not correct.")
        return _panel(401, password_form=form)
    if user.failed_password_count:
        lockout.reset_password_failures(user)
    audit.record("reauth.succeeded", actor=user, subject=user, now=now, detail={"where": "security"}, commit=True)
    reauth.mark_fresh(now)
    return _after_post()


@bp.route("/security/device", methods=["POST"])
def choose_device():
    """Pick SMS, Authenticator Apps or Email under Choose MFA Device."""
    now = clock.now()
    if not reauth.is_fresh(now):
        return _stale()
    device = request.form.get("device")
    if device not in METHOD_LABELS:
        return _panel(400, error="Choose SMS, Authenticator Apps or Email.")
    user = current_user._get_current_object()
    try:
        if device == "totp":
            mfa_enrollment.start_totp(user, now)
            return _after_post(device="totp", step="totp_qr")
        if device == "sms":
            mfa_enrollment.check_allowed(user, "sms")
            return _after_post(device="sms", step="sms_phone")
        forced = policy.must_enroll(user)
        mfa_enrollment.choose_email(user, now)
    except MfaError as error:
        return _panel(error.status, retry_after=getattr(error, "retry_after", None), error=str(error))
    if forced:
        return _finish_forced_email(user, now)
    _renew_login(user, now, keep_fresh=True)
    flash(f"Multi-factor authentication is on: Email to {mask_destination('email', email=user.email, phone_e164=None)}. "
          "Your next Log In will email you a code.", "success")
    return hx_redirect(url_for("security.show_security"))


def _finish_forced_email(user, now):
    """A user who had to enroll picked Email: the first emailed code completes the login."""
    logout_user()
    state = pending_login.start(user, next_url=None, now=now)
    try:
        mfa_login.send_login_code(user, challenge=state["challenge"], now=now)
    except (SendThrottled, DeliveryFailed) as error:
        flash(str(error), "error")
    else:
        flash("Email is now your MFA device. Enter the code we just emailed you to finish logging in.", "success")
    return hx_redirect(url_for("auth.verify_code"))


@bp.route("/security/phone", methods=["POST"])
def save_phone_number():
    """Save a US phone number (pending) and text it a code."""
    now = clock.now()
    if not reauth.is_fresh(now):
        return _stale()
    form = PhoneNumberForm()
    if not form.validate_on_submit():
        return _panel(400, device="sms", step="sms_phone", phone_form=form)
    session[CHALLENGE_KEY] = codes.new_challenge()
    try:
        mfa_enrollment.start_sms(current_user, form.phone.data, challenge=session[CHALLENGE_KEY], now=now)
    except MfaError as error:
        form.phone.errors.append(str(error))
        return _panel(error.status, retry_after=getattr(error, "retry_after", None), device="sms", step="sms_phone",
                      phone_form=form)
    return _after_post(device="sms", step="sms_code")


@bp.route("/security/phone/resend", methods=["POST"])
def resend_enrollment_code():
    """Text a new code to the number being set up (the "click here" link)."""
    now = clock.now()
    if not reauth.is_fresh(now):
        return _stale()
    challenge = session.get(CHALLENGE_KEY)
    if not challenge:
        challenge = session[CHALLENGE_KEY] = codes.new_challenge()
    retry_after = None
    try:
        pending = mfa_enrollment.resend_sms(current_user, challenge=challenge, now=now)
    except MfaError as error:
        message, category, status = str(error), "error", error.status
        retry_after = getattr(error, "retry_after", None)
    else:
        message, category, status = f"A new code was sent to {mask_phone(pending.phone_e164)}. Earlier codes no longer work.", "success", 200
    if is_htmx():
        return _panel(status, retry_after=retry_after, step="sms_code", status_message=(category, message))
    flash(message, category)
    return redirect(url_for("security.show_security", device="sms", step="sms_code"), code=303)


@bp.route("/security/app/continue")
def continue_totp():
    """After scanning the QR code (or typing the key): ask for the app's code."""
    return _panel(device="totp", step="totp_code")


@bp.route("/security/verify", methods=["POST"])
def verify_device():
    """Check the code from the new phone or app and make it the one MFA method."""
    now = clock.now()
    if not reauth.is_fresh(now):
        return _stale()
    form = CodeForm()
    pending = mfa_enrollment.pending_for(current_user, now)
    step = "sms_code" if pending is not None and pending.method == "sms" else "totp_code"
    if not form.validate_on_submit():
        return _panel(400, step=step, code_form=form)
    user = current_user._get_current_object()
    try:
        enrollment = mfa_enrollment.verify(user, form.code.data, challenge=session.get(CHALLENGE_KEY, ""), now=now)
    except EnrollmentExpired as error:
        return _panel(error.status, error=str(error))
    except MfaError as error:
        form.code.errors.append(str(error))
        return _panel(error.status, retry_after=getattr(error, "retry_after", None), step=step, code_form=form)
    _renew_login(user, now, keep_fresh=False)
    destination = mask_destination(enrollment.method, email=user.email, phone_e164=enrollment.phone_e164)
    flash(f"Multi-factor authentication is on: {enrollment.label}{f' to {destination}' if destination else ''}.", "success")
    return hx_redirect(url_for("dashboard.index"))
