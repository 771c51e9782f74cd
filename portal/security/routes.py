from flask import flash, redirect, request, session, url_for
from flask_login import current_user

from portal import auth_state, clock, limits
from portal.accounts import signin
from portal.accounts.errors import AccountError
from portal.errors import retry_after as retry_after_header
from portal.forms import CodeForm, ResendForm
from portal.htmx import hx_redirect, is_htmx, render
from portal.mfa import codes, enrollment, methods, policy, security_tab
from portal.mfa.errors import (
    EnrollmentExpired,
    MethodNotAllowed,
    MfaError,
    NumberNotSaved,
    SendThrottled,
    SetupCodeNotSent,
)
from portal.security import bp
from portal.security.forms import ChooseDeviceForm, ConfirmPasswordForm, PhoneNumberForm, VipCredentialForm
from portal.vip.errors import MalformedCredentialId

# The challenge that binds set-up codes to this session.
CHALLENGE_KEY = "enroll_challenge"
# Set when the first code to a number being set up could not be sent (so it was not saved).
SEND_FAILED_KEY = "enroll_send_failed"


def _panel(status=200, retry_after=None, *, device=None, step=None, error=None, password_form=None,
           phone_form=None, code_form=None, vip_form=None, status_message=None):
    """The Security tab (or its panel for HTMX); every 429 says when to try again."""
    user = current_user._get_current_object()
    tab = security_tab.build(user, clock.now(), device=device, step=step, challenge=session.get(CHALLENGE_KEY))
    response = render(
        "security/show_security.html", "security/_panel.html", target="security-panel",
        tab=tab, error=error, status_message=status_message,
        password_form=password_form or ConfirmPasswordForm(), phone_form=phone_form or PhoneNumberForm(),
        code_form=code_form or CodeForm(), resend_form=ResendForm(), choose_form=ChooseDeviceForm(),
        vip_form=vip_form or VipCredentialForm(),
    )
    headers = {}
    if status == 429:
        headers = retry_after_header(retry_after.total_seconds() if retry_after is not None else 60)
    return response, status, headers


def _failed(problem, **kwargs):
    """The panel again with a service's error: its status, and Retry-After on a 429."""
    return _panel(problem.status, retry_after=getattr(problem, "retry_after", None), **kwargs)


def _after_post(step: methods.Step | None = None):
    """POST -> 303 -> GET without JavaScript; the panel in place for HTMX."""
    if is_htmx():
        return _panel(step=step)
    return redirect(url_for("security.show_security", step=step.id if step else None), code=303)


def _stale():
    """The password confirmation is missing or older than allowed: ask again."""
    flash("For your security, re-enter your password to continue.", "info")
    if is_htmx():
        return _panel(401)
    return redirect(url_for("security.show_security"), code=303)


fresh_password_required = auth_state.fresh_required(auth_state.PASSWORD, on_stale=_stale)


@bp.route("/")
def account_settings():
    """Open Account Settings on its Security tab."""
    return redirect(url_for("security.show_security"), code=303)


@bp.route("/security")
def show_security():
    """Show the Security tab: password re-entry, current MFA state and Choose MFA Device."""
    return _panel(device=methods.find(request.args.get("device")), step=methods.Step.parse(request.args.get("step")))


@bp.route("/security/confirm-password", methods=["POST"])
@limits.reauth_per_address
def confirm_password():
    """Check the re-entered password; it stays fresh for a few minutes."""
    form = ConfirmPasswordForm()
    if not form.validate_on_submit():
        return _panel(400, password_form=form)
    try:
        signin.confirm_password(current_user._get_current_object(), form.password.data, now=clock.now())
    except AccountError as error:
        form.password.errors.append(str(error))
        return _failed(error, password_form=form)
    return _after_post()


@bp.route("/security/device", methods=["POST"])
@fresh_password_required
def choose_device():
    """Pick SMS, Authenticator Apps or Email under Choose MFA Device."""
    now = clock.now()
    user = current_user._get_current_object()
    forced = policy.must_enroll(user)
    try:
        begun = enrollment.begin(user, methods.get(request.form.get("device")), now)
    except MfaError as error:
        return _failed(error, error=str(error))
    if begun.step is not None:
        return _after_post(begun.step)
    if forced:
        # A user who had to enroll turned on a method at once: its first code completes the Log In.
        problem = signin.log_in_again_with_code(user, now=now)
        method = begun.enrollment_method
        flash(problem or f"{method.label} is now your MFA device. Enter the code we just {method.channel.past} you "
                         "to finish logging in.", "error" if problem else "success")
        return hx_redirect(url_for("auth.verify_code"))
    signin.renew_login(user, now=now, password_fresh=True)
    flash(f"{_turned_on(user)} Your next Log In will {begun.enrollment_method.channel.verb} you a code.", "success")
    return hx_redirect(url_for("security.show_security"))


def _turned_on(user) -> str:
    method = methods.of(user.mfa)
    destination = method.masked_destination(user, user.mfa)
    return f"Multi-factor authentication is on: {method.described(destination)}."


@bp.route("/security/phone", methods=["POST"])
@fresh_password_required
def save_phone_number():
    """Save a US phone number (pending) and text it a code."""
    form = PhoneNumberForm()
    phone_step = methods.Step(methods.SMS, methods.SMS.entry_step)
    if not form.validate_on_submit():
        return _panel(400, step=phone_step, phone_form=form)
    session[CHALLENGE_KEY] = codes.new_challenge()
    try:
        enrollment.start_sms(current_user._get_current_object(), form.phone.data, challenge=session[CHALLENGE_KEY],
                             now=clock.now())
    except MfaError as error:
        session[SEND_FAILED_KEY] = isinstance(error, SetupCodeNotSent)
        form.phone.errors.append(str(error))
        return _failed(error, step=phone_step, phone_form=form)
    session.pop(SEND_FAILED_KEY, None)
    return _after_post(methods.Step(methods.SMS, methods.SMS.resume_step))


@bp.route("/security/phone/resend", methods=["POST"])
@fresh_password_required
def resend_enrollment_code():
    """Send a new code to the phone being set up (the "click here" link)."""
    challenge = session.get(CHALLENGE_KEY) or session.setdefault(CHALLENGE_KEY, codes.new_challenge())
    retry_after = None
    try:
        pending = enrollment.resend_code(current_user._get_current_object(), challenge=challenge, now=clock.now(),
                                         after_failed_send=session.pop(SEND_FAILED_KEY, False))
    except NumberNotSaved as error:
        return _number_again(error)
    except MfaError as error:
        message, category, status = str(error), "info" if isinstance(error, SendThrottled) else "error", error.status
        retry_after = getattr(error, "retry_after", None)
    else:
        destination = methods.of(pending).masked_destination(current_user, pending)
        message, category, status = (f"A new code was sent to {destination}. Earlier codes no longer work.",
                                     "success", 200)
    if is_htmx():
        return _panel(status, retry_after=retry_after, status_message=(category, message))
    flash(message, category)
    return redirect(url_for("security.show_security"), code=303)


def _number_again(problem):
    """Nothing to resend (the number's first code could not be sent): say so, on the phone step."""
    if is_htmx():
        return _failed(problem, step=methods.Step(methods.SMS, methods.SMS.entry_step), error=str(problem))
    flash(str(problem), "error")
    return redirect(url_for("security.show_security", device=methods.SMS.key), code=303)


@bp.route("/security/app/continue")
def continue_totp():
    """After scanning the QR code (or typing the key): ask for the app's code."""
    return _panel(step=methods.Step(methods.AUTHENTICATOR, "code"))


@bp.route("/security/vip", methods=["POST"])
@fresh_password_required
def register_vip_credential():
    """Check a Symantec VIP Access Credential ID and two codes with VIP and make it the one MFA method."""
    now = clock.now()
    user = current_user._get_current_object()
    form = VipCredentialForm()
    vip_step = methods.Step(methods.VIP_ACCESS, methods.VIP_ACCESS.entry_step)
    if not form.validate_on_submit():
        return _panel(400, step=vip_step, vip_form=form)
    try:
        enrollment.register_vip(user, form.credential_id.data, form.first_code.data, form.second_code.data, now=now)
    except MalformedCredentialId as error:
        form.credential_id.errors.append(str(error))
        return _failed(error, step=vip_step, vip_form=form)
    except MethodNotAllowed as error:
        return _failed(error, error=str(error))
    except MfaError as error:
        form.first_code.errors.append(str(error))
        return _failed(error, step=vip_step, vip_form=form)
    signin.renew_login(user, now=now, password_fresh=False)
    flash(_turned_on(user), "success")
    return hx_redirect(url_for("dashboard.index"))


@bp.route("/security/verify", methods=["POST"])
@fresh_password_required
def verify_device():
    """Check the code from the new phone or app and make it the one MFA method."""
    now = clock.now()
    user = current_user._get_current_object()
    form = CodeForm()
    waiting = methods.of(enrollment.pending_for(user, now))
    code_step = methods.Step(waiting, "code") if waiting else None
    if not form.validate_on_submit():
        return _panel(400, step=code_step, code_form=form)
    try:
        enrollment.verify(user, form.code.data, challenge=session.get(CHALLENGE_KEY, ""), now=now)
    except EnrollmentExpired as error:
        return _failed(error, error=str(error))
    except MfaError as error:
        form.code.errors.append(str(error))
        return _failed(error, step=code_step, code_form=form)
    signin.renew_login(user, now=now, password_fresh=False)
    flash(_turned_on(user), "success")
    return hx_redirect(url_for("dashboard.index"))
