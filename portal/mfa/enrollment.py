"""Setting up and switching a user's one MFA method.

A new method is pending (inactive) until proven: SMS by a code sent to the new number,
Authenticator Apps by a code from the app, Email by the already verified login address.
Symantec VIP Access needs no pending step: its two codes prove it in one request, and VIP
holds the binding, which is removed (on the task queue) whenever it stops being the method.
The swap is one transaction, so afterwards exactly one method is active; until then the old
method keeps working. There is deliberately no way here to turn MFA off: support clears it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import bindparam, delete, select

from portal import audit, metrics, vip
from portal.accounts import lockout
from portal.accounts.users import end_all_sessions
from portal.extensions import db
from portal.mfa import codes, messages, methods, phones, policy, totp
from portal.mfa.errors import (
    CannotClear,
    DeliveryFailed,
    EmailNotVerified,
    EnrollmentExpired,
    MethodNotAllowed,
    MfaError,
    NumberNotSaved,
    SetupCodeNotSent,
)
from portal.models import MfaEnrollment, MfaPendingEnrollment, User
from portal.vip import codes as vip_codes
from portal.vip.tasks import release_later


def check_allowed(user: User, method: methods.Method) -> None:
    """Raises MethodNotAllowed for a method the user may not choose (or one not offered here)."""
    if method.device not in policy.allowed_methods(user):
        raise MethodNotAllowed("Support staff must use Authenticator Apps." if user.role == "support" else None)
    if not method.available():
        raise MethodNotAllowed(f"{method.label} is not available here.")


_PENDING = select(MfaPendingEnrollment).where(MfaPendingEnrollment.user_id == bindparam("uid"))


def pending_for(user: User, now: datetime) -> MfaPendingEnrollment | None:
    """The user's unexpired pending method, if any; an expired one is removed (committed)."""
    pending = db.session.scalar(_PENDING, {"uid": user.id})
    if pending is not None and pending.expires_at <= now:
        db.session.delete(pending)
        db.session.commit()
        return None
    return pending


def _replace_pending(user: User, method: methods.Method, now: datetime, **details) -> MfaPendingEnrollment:
    db.session.execute(delete(MfaPendingEnrollment).where(MfaPendingEnrollment.user_id == user.id))
    pending = MfaPendingEnrollment(user_id=user.id, method=method.key, created_at=now,
                                   expires_at=now + current_app.config["MFA_ENROLLMENT_TTL"], **details)
    db.session.add(pending)
    db.session.flush()
    return pending


@dataclass(frozen=True)
class Begun:
    """What choosing a device led to: the first set-up step, or a method already on."""

    step: methods.Step | None = None
    enrollment: MfaEnrollment | None = None

    @property
    def enrollment_method(self) -> methods.Method | None:
        return methods.of(self.enrollment)


def begin(user: User, method: methods.Method, now: datetime) -> Begun:
    """Start setting up `method` under "Choose MFA Device:". Commits what it stores.

    A method without set-up steps (Email) turns on at once, for the verified login address
    only. A method whose first step needs something stored (an authenticator's new secret,
    a new one on every attempt) stores it as pending.

    Raises MethodNotAllowed, EmailNotVerified.
    """
    check_allowed(user, method)
    if method.uses_login_email and user.email_verified_at is None:
        raise EmailNotVerified()
    if not method.steps:
        if user.mfa is not None and user.mfa.method == method.key:
            return Begun(enrollment=user.mfa)
        return Begun(enrollment=activate(user, method=method.key, now=now))
    details = method.new_pending_details()
    if details is not None:
        _replace_pending(user, method, now, **details)
        db.session.commit()
    return Begun(step=methods.Step(method, method.entry_step or method.resume_step))


def start_sms(user: User, raw_phone: str, *, challenge: str, now: datetime) -> MfaPendingEnrollment:
    """Save the number as pending and text it a code.

    Raises MethodNotAllowed, InvalidPhoneNumber, SendThrottled, SetupCodeNotSent (a
    DeliveryFailed: the number was not saved). On a failure nothing is saved and any previous
    pending number stays as it was.
    """
    check_allowed(user, methods.SMS)
    e164 = phones.parse_us_number(raw_phone)
    saved = []
    # The number is saved only once its code went out (in the same commit).
    try:
        messages.deliver_code(user, methods.SMS, MfaPendingEnrollment(method=methods.SMS.key, phone_e164=e164),
                              purpose="enroll", challenge=challenge, now=now,
                              then=lambda: saved.append(_replace_pending(user, methods.SMS, now, phone_e164=e164)))
    except DeliveryFailed as error:
        raise SetupCodeNotSent() from error
    return saved[0]


def resend_code(user: User, *, challenge: str, now: datetime, after_failed_send: bool = False) -> MfaPendingEnrollment:
    """Send a fresh code to the destination being set up; the old code stops working.

    `after_failed_send`: the session's last set-up attempt failed to send its first code (so
    nothing was saved), which is what a missing pending method then means.

    Raises NumberNotSaved, EnrollmentExpired, SendThrottled, DeliveryFailed.
    """
    pending = pending_for(user, now)
    method = methods.of(pending)
    if method is None or not method.sends_codes:
        raise NumberNotSaved() if pending is None and after_failed_send else EnrollmentExpired()
    messages.deliver_code(user, method, pending, purpose="enroll", challenge=challenge, now=now, resend=True)
    return pending


def verify(user: User, raw_code: str, *, challenge: str, now: datetime) -> MfaEnrollment:
    """Prove the pending method with a code and make it the user's one active method. Commits.

    Raises EnrollmentExpired, MalformedCode, AccountLocked, InvalidCode, CodeExpired,
    CodeUsedUp, NoActiveCode. Each failure leaves the old method active.
    """
    pending = pending_for(user, now)
    if pending is None:
        raise EnrollmentExpired()
    method = methods.of(pending)
    try:
        step = method.check_code(user, pending, raw_code, purpose="enroll", challenge=challenge, now=now)
    except MfaError as error:
        db.session.rollback()
        audit.record("mfa.code_failed", outcome="failure", subject=user, now=now,
                     detail={"method": method.key, "purpose": "enroll", "reason": type(error).__name__}, commit=True)
        raise
    return activate(user, method=method.key, phone_e164=pending.phone_e164, totp_secret=pending.totp_secret,
                    totp_last_step=step, now=now)


def register_vip(user: User, raw_credential_id: str, first_code: str, second_code: str, *,
                 now: datetime) -> MfaEnrollment:
    """Bind a Symantec VIP Access credential (its Credential ID and two consecutive codes, checked
    by VIP) and make it the user's one method. Commits.

    Nothing is half-written: if VIP did not answer, or saving here fails after VIP bound the
    credential, its removal at VIP is queued (and skipped if it is the active method by then).

    Raises MethodNotAllowed, MalformedCredentialId, MalformedCode, SameSecurityCodes,
    AccountLocked, UnknownCredentialId, SecurityCodesRejected, VipUnavailable. Each failure
    leaves the old method active.
    """
    method = methods.VIP_ACCESS
    check_allowed(user, method)
    try:
        credential_id, last_code = vip_codes.bind(user, raw_credential_id, first_code, second_code, now=now)
    except MfaError as error:
        db.session.rollback()
        audit.record("mfa.code_failed", outcome="failure", subject=user, now=now,
                     detail={"method": method.key, "purpose": "enroll", "reason": type(error).__name__}, commit=True)
        if error.status == 503:
            release_later(user.id, vip.normalise_credential_id(raw_credential_id))
        raise
    try:
        return activate(user, method=method.key, vip_credential_id=credential_id, vip_last_code=last_code,
                        vip_last_step=totp.step_at(now), now=now)
    except Exception:
        db.session.rollback()
        release_later(user.id, credential_id)
        raise


def activate(user: User, *, method: str, now: datetime, phone_e164: str | None = None,
             totp_secret: str | None = None, totp_last_step: int | None = None,
             vip_credential_id: str | None = None, vip_last_code: str | None = None,
             vip_last_step: int | None = None) -> MfaEnrollment:
    """Swap in the new method in one transaction; end the user's other sessions; notify. Commits.

    A VIP Access credential that stops being the method is removed at VIP (queued).
    The caller must renew the current session's login (the session version changes).
    """
    new = methods.get(method)
    old = user.mfa
    old_method = methods.of(old)
    old_destination = old_method.masked_destination(user, old) if old_method else None
    old_phone = old.phone_e164 if old is not None and old.phone_e164 and old.phone_e164 != phone_e164 else None
    released = old.vip_credential_id if old is not None and old.vip_credential_id != vip_credential_id else None
    if old is not None:
        db.session.delete(old)
        db.session.flush()
    enrollment = MfaEnrollment(
        user_id=user.id, method=new.stored_key, phone_e164=phone_e164, totp_secret=totp_secret,
        vip_credential_id=vip_credential_id, vip_last_code=vip_last_code, vip_last_step=vip_last_step,
        enrolled_at=now,
    )
    # The code that proved an authenticator app may not be used again; another method has no steps.
    user.totp_last_step = totp_last_step
    db.session.add(enrollment)
    db.session.execute(delete(MfaPendingEnrollment).where(MfaPendingEnrollment.user_id == user.id))
    codes.void_live_codes(user, now)
    end_all_sessions(user)
    db.session.flush()
    audit.record(
        "mfa.enrolled" if old is None else "mfa.switched", actor=user, subject=user, now=now,
        detail={"method": new.key, "destination": new.masked_destination(user, enrollment),
                "previous_method": old_method.key if old_method else None},
    )
    db.session.commit()
    if released:
        release_later(user.id, released)
    db.session.refresh(user)
    if old is None:
        messages.notify_change(user, "enabled", method=new.key)
    else:
        messages.notify_change(user, "switched", method=new.key, old_method=old_method.key,
                               old_destination=old_destination, old_phone=old_phone)
    db.session.commit()
    return enrollment


def clear_by_support(user: User, *, actor: User, reason: str, ticket: str, now: datetime) -> None:
    """Remove the user's MFA (the "lost phone" case). Only support calls this. Commits.

    Raises CannotClear (own account, nothing to clear, missing reason or ticket). Deletes the
    method and any method being set up, voids live codes, resets the failure counter and lock,
    ends every session of the user, records who and why, and emails the user.
    """
    reason, ticket = (reason or "").strip(), (ticket or "").strip()
    if actor.role != "support":
        raise CannotClear("Only support can clear MFA settings.")
    if actor.id == user.id:
        raise CannotClear("You cannot clear your own MFA settings; ask another member of support.")
    if not reason or not ticket:
        raise CannotClear("Give a reason and the support ticket reference.")
    if user.mfa is None:
        raise CannotClear("This user has no MFA settings to clear.")
    previous = methods.of(user.mfa).key
    released = user.mfa.vip_credential_id
    db.session.delete(user.mfa)
    db.session.execute(delete(MfaPendingEnrollment).where(MfaPendingEnrollment.user_id == user.id))
    codes.void_live_codes(user, now)
    lockout.attempt_succeeded(user, lockout.CODE)  # the code lock and its counter go with the method
    end_all_sessions(user)
    audit.record("mfa.cleared", actor=actor, subject=user, now=now,
                 detail={"previous_method": previous, "reason": reason[:500], "ticket": ticket[:100]})
    db.session.commit()
    if released:
        release_later(user.id, released)
    metrics.support_action("cleared_mfa")
    db.session.refresh(user)
    messages.notify_change(user, "cleared")
    db.session.commit()
