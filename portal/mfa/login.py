"""The code step of Log In, after a correct password."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, or_, update
from sqlalchemy.orm.attributes import set_committed_value

from portal import audit
from portal.extensions import db
from portal.mfa import codes, crypto, messages, totp
from portal.mfa.errors import DeliveryFailed, InvalidCode, MfaError
from portal.mfa.masking import mask_destination
from portal.models import MfaEnrollment, User


def destination(user: User) -> str | None:
    """Where codes go, masked; None for Authenticator Apps."""
    enrollment = user.mfa
    return mask_destination(enrollment.method, email=user.email, phone_e164=enrollment.phone_e164)


def send_login_code(user: User, *, challenge: str, now: datetime, resend: bool = False) -> None:
    """Send a login code by the user's SMS or Email method, voiding the previous one.

    Raises SendThrottled, DeliveryFailed. On a failure nothing changes: no code is stored and
    no attempt is counted.
    """
    enrollment = user.mfa
    target = enrollment.phone_e164 if enrollment.method == "sms" else user.email
    _, code = codes.issue(user, purpose="login", channel=enrollment.method, destination=target,
                          challenge=challenge, now=now)
    detail = {"channel": enrollment.method, "destination": destination(user), "purpose": "login"}
    try:
        messages.send_code(enrollment.method, target, code)
    except DeliveryFailed:
        db.session.rollback()
        audit.record("mfa.code_send_failed", outcome="failure", subject=user, now=now, detail=detail, commit=True)
        raise
    audit.record("mfa.code_resent" if resend else "mfa.code_sent", subject=user, now=now, detail=detail)
    db.session.commit()


def verify_login_code(user: User, raw_code: str, *, challenge: str, now: datetime, completes_login: bool = False) -> None:
    """Accept the code of the user's method once, or raise.

    With `completes_login`, the "login.succeeded" event is written in the same transaction.

    Raises MalformedCode, AccountLocked, InvalidCode, CodeExpired, CodeUsedUp, NoActiveCode.
    """
    enrollment = user.mfa
    try:
        if enrollment.method == "totp":
            _verify_totp(user, enrollment, raw_code, now)
        else:
            codes.verify(user, purpose="login", challenge=challenge, raw_code=raw_code, now=now)
    except MfaError as error:
        db.session.rollback()
        audit.record("mfa.code_failed", outcome="failure", subject=user, now=now,
                     detail={"method": enrollment.method, "purpose": "login", "reason": type(error).__name__}, commit=True)
        raise
    user.last_mfa_at = now
    enrollment.last_used_at = now
    codes.record_success(user, now)
    audit.record("mfa.code_verified", subject=user, now=now, detail={"method": enrollment.method, "purpose": "login"})
    if completes_login:
        audit.record("login.succeeded", actor=user, subject=user, now=now, detail={"method": enrollment.method})
        _commit_keeping(user)
    else:
        db.session.commit()


def _commit_keeping(user: User) -> None:
    """Commit without expiring what the session holds: Log In goes on with this user (its id
    and session version) and need not read it back. A session version changed meanwhile by
    support fails closed: the next request finds it stale and signs the session out."""
    session = db.session()
    previous, session.expire_on_commit = session.expire_on_commit, False
    try:
        session.commit()
    finally:
        session.expire_on_commit = previous


_enrollments = MfaEnrollment.__table__
_CLAIM_STEP = (
    update(_enrollments)
    .where(_enrollments.c.id == bindparam("enrollment_id"),
           or_(_enrollments.c.totp_last_step.is_(None), _enrollments.c.totp_last_step < bindparam("step")))
    .values(totp_last_step=bindparam("step"), last_used_at=bindparam("now"))
)


def _verify_totp(user: User, enrollment: MfaEnrollment, raw_code: str, now: datetime) -> None:
    code = codes.normalise_code(raw_code)
    codes.check_not_locked(user, now)
    secret = crypto.decrypt(enrollment.totp_secret)
    step = totp.matching_step(secret, code, now, enrollment.totp_last_step)
    if step is not None:
        # Claim the step atomically: a replay, or a second request racing this one, loses.
        claimed = db.session.execute(_CLAIM_STEP, {"enrollment_id": enrollment.id, "step": step, "now": now}).rowcount
        if claimed == 1:
            # What the statement wrote, so the session does not write it again.
            set_committed_value(enrollment, "totp_last_step", step)
            set_committed_value(enrollment, "last_used_at", now)
            return
        db.session.rollback()
    replay = step is None and totp.matching_step(secret, code, now, None) is not None
    codes.record_failure(user, now)
    codes.check_not_locked(user, now)
    if replay or step is not None:
        raise InvalidCode("That code was already used. Wait for your app to show a new code, then enter it.")
    raise InvalidCode("That code is not correct. Enter the 6-digit code your app shows now.")
