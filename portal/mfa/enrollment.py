"""Setting up and switching a user's one MFA method.

A new method is pending (inactive) until proven: SMS by a code sent to the new number,
Authenticator Apps by a code from the app, Email by the already verified login address.
The swap is one transaction, so afterwards exactly one method is active; until then the old
method keeps working. There is deliberately no way here to turn MFA off: support clears it.
"""

from __future__ import annotations

from datetime import datetime

from flask import current_app
from sqlalchemy import delete

from portal.accounts.users import end_all_sessions
from portal import audit
from portal.extensions import db
from portal.mfa import codes, crypto, messages, phones, policy, totp
from portal.mfa.errors import (
    DeliveryFailed,
    EmailNotVerified,
    EnrollmentExpired,
    InvalidCode,
    MethodNotAllowed,
    MfaError,
)
from portal.mfa.masking import mask_destination
from portal.models import MfaEnrollment, MfaPendingEnrollment, User


def check_allowed(user: User, method: str) -> None:
    if method not in policy.allowed_methods(user):
        raise MethodNotAllowed(
            "Support staff must use Authenticator Apps." if user.role == "support" else None
        )


def pending_for(user: User, now: datetime) -> MfaPendingEnrollment | None:
    """The user's unexpired pending method, if any; an expired one is removed."""
    pending = db.session.scalar(db.select(MfaPendingEnrollment).where(MfaPendingEnrollment.user_id == user.id))
    if pending is not None and pending.expires_at <= now:
        db.session.delete(pending)
        db.session.commit()
        return None
    return pending


def _replace_pending(user: User, now: datetime, **details) -> MfaPendingEnrollment:
    db.session.execute(delete(MfaPendingEnrollment).where(MfaPendingEnrollment.user_id == user.id))
    pending = MfaPendingEnrollment(
        user_id=user.id, created_at=now, expires_at=now + current_app.config["MFA_ENROLLMENT_TTL"], **details
    )
    db.session.add(pending)
    db.session.flush()
    return pending


def cancel_pending(user: User) -> None:
    db.session.execute(delete(MfaPendingEnrollment).where(MfaPendingEnrollment.user_id == user.id))
    db.session.commit()


def choose_email(user: User, now: datetime) -> MfaEnrollment:
    """Enable Email at once, for the verified login address only.

    Raises MethodNotAllowed, EmailNotVerified.
    """
    check_allowed(user, "email")
    if user.email_verified_at is None:
        raise EmailNotVerified()
    if user.mfa is not None and user.mfa.method == "email":
        return user.mfa
    return activate(user, method="email", now=now)


def start_sms(user: User, raw_phone: str, *, challenge: str, now: datetime) -> MfaPendingEnrollment:
    """Save the number as pending and text it a code.

    Raises MethodNotAllowed, InvalidPhoneNumber, SendThrottled, DeliveryFailed. On a failure
    nothing is saved and any previous pending number stays as it was.
    """
    check_allowed(user, "sms")
    e164 = phones.parse_us_number(raw_phone)
    codes.check_send_allowed(user, "sms", e164, now, purpose="enroll", challenge=challenge)
    pending = _replace_pending(user, now, method="sms", phone_e164=e164)
    _send_enrollment_code(user, e164, challenge=challenge, now=now)
    return pending


def resend_sms(user: User, *, challenge: str, now: datetime) -> MfaPendingEnrollment:
    """Text a fresh code to the pending number; the old code stops working.

    Raises EnrollmentExpired, SendThrottled, DeliveryFailed.
    """
    pending = pending_for(user, now)
    if pending is None or pending.method != "sms":
        raise EnrollmentExpired()
    _send_enrollment_code(user, pending.phone_e164, challenge=challenge, now=now)
    return pending


def _send_enrollment_code(user: User, e164: str, *, challenge: str, now: datetime) -> None:
    try:
        _, code = codes.issue(user, purpose="enroll", channel="sms", destination=e164, challenge=challenge, now=now)
    except MfaError:
        db.session.rollback()  # nothing half-written: the old pending number stays as it was
        raise
    detail = {"channel": "sms", "destination": phones.mask_phone(e164), "purpose": "enroll"}
    try:
        messages.send_code("sms", e164, code)
    except DeliveryFailed:
        db.session.rollback()
        audit.record("mfa.code_send_failed", outcome="failure", subject=user, now=now, detail=detail, commit=True)
        raise
    audit.record("mfa.code_sent", subject=user, now=now, detail=detail)
    db.session.commit()


def start_totp(user: User, now: datetime) -> MfaPendingEnrollment:
    """Create a new pending authenticator secret (a new one on every attempt).

    Raises MethodNotAllowed.
    """
    check_allowed(user, "totp")
    pending = _replace_pending(user, now, method="totp", totp_secret=crypto.encrypt(totp.new_secret()))
    db.session.commit()
    return pending


def totp_setup(user: User, pending: MfaPendingEnrollment) -> dict:
    """What the page shows while setting up an app: QR code (SVG) and the manual key."""
    secret = crypto.decrypt(pending.totp_secret)
    uri = totp.provisioning_uri(secret, user.email)
    return {"qr_svg": totp.qr_svg(uri), "manual_key": totp.grouped(secret), "uri": uri}


def verify(user: User, raw_code: str, *, challenge: str, now: datetime) -> MfaEnrollment:
    """Prove the pending method with a code and make it the user's one active method.

    Raises EnrollmentExpired, MalformedCode, AccountLocked, InvalidCode, CodeExpired,
    CodeUsedUp, NoActiveCode. Each failure leaves the old method active.
    """
    pending = pending_for(user, now)
    if pending is None:
        raise EnrollmentExpired()
    try:
        return _verify_pending(user, pending, raw_code, challenge=challenge, now=now)
    except MfaError as error:
        db.session.rollback()
        audit.record("mfa.code_failed", outcome="failure", subject=user, now=now,
                     detail={"method": pending.method, "purpose": "enroll", "reason": type(error).__name__}, commit=True)
        raise


def _verify_pending(user: User, pending: MfaPendingEnrollment, raw_code: str, *, challenge: str, now: datetime) -> MfaEnrollment:
    if pending.method == "sms":
        codes.verify(user, purpose="enroll", challenge=challenge, raw_code=raw_code, now=now)
        return activate(user, method="sms", phone_e164=pending.phone_e164, now=now)
    code = codes.normalise_code(raw_code)
    codes.check_not_locked(user, now)
    secret = crypto.decrypt(pending.totp_secret)
    step = totp.matching_step(secret, code, now, None)
    if step is None:
        codes.record_failure(user, now)
        codes.check_not_locked(user, now)
        raise InvalidCode("That code is not correct. Enter the 6-digit code your app shows now.")
    codes.record_success(user, now)
    return activate(user, method="totp", totp_secret=pending.totp_secret, totp_last_step=step, now=now)


def activate(user: User, *, method: str, now: datetime, phone_e164: str | None = None,
             totp_secret: str | None = None, totp_last_step: int | None = None) -> MfaEnrollment:
    """Swap in the new method in one transaction; end the user's other sessions; notify.

    The caller must renew the current session's login (the session version changes).
    """
    old = user.mfa
    old_method = old.method if old else None
    old_destination = mask_destination(old.method, email=user.email, phone_e164=old.phone_e164) if old else None
    old_phone = old.phone_e164 if old is not None and old.method == "sms" and old.phone_e164 != phone_e164 else None
    if old is not None:
        db.session.delete(old)
        db.session.flush()
    enrollment = MfaEnrollment(
        user_id=user.id, method=method, phone_e164=phone_e164, totp_secret=totp_secret,
        totp_last_step=totp_last_step, enrolled_at=now, last_used_at=now if method != "email" else None,
    )
    db.session.add(enrollment)
    db.session.execute(delete(MfaPendingEnrollment).where(MfaPendingEnrollment.user_id == user.id))
    codes.void_live_codes(user, now)
    end_all_sessions(user)
    db.session.flush()
    audit.record(
        "mfa.enrolled" if old_method is None else "mfa.switched", actor=user, subject=user, now=now,
        detail={"method": method, "destination": mask_destination(method, email=user.email, phone_e164=phone_e164),
                "previous_method": old_method},
    )
    db.session.commit()
    db.session.refresh(user)
    if old_method is None:
        messages.notify_change(user, "enabled", method=method)
    else:
        messages.notify_change(user, "switched", method=method, old_method=old_method, old_destination=old_destination,
                               old_phone=old_phone)
    db.session.commit()
    return enrollment


class CannotClear(MfaError):
    status = 400


def clear_by_support(user: User, *, actor: User, reason: str, ticket: str, now: datetime) -> None:
    """Remove the user's MFA (the "lost phone" case). Only support calls this.

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
    previous = user.mfa.method
    db.session.delete(user.mfa)
    db.session.execute(delete(MfaPendingEnrollment).where(MfaPendingEnrollment.user_id == user.id))
    codes.void_live_codes(user, now)
    user.mfa_failed_count = 0
    user.mfa_locked_until = None
    end_all_sessions(user)
    audit.record("mfa.cleared", actor=actor, subject=user, now=now,
                 detail={"previous_method": previous, "reason": reason[:500], "ticket": ticket[:100]})
    db.session.commit()
    db.session.refresh(user)
    messages.notify_change(user, "cleared")
    db.session.commit()
