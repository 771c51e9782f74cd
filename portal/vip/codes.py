"""VIP Access codes: binding a credential with two codes, and checking a code at Log In.

Every rule of authenticator codes holds. Each comparison is paid for first: one of the
account's allowed wrong codes is claimed and committed before VIP is asked, so no database lock
is held while VIP answers and parallel guesses compare no more codes than the limit allows; a
wrong code keeps its claim (and may lock the account), a right one resets the counter, and an
answer that never came (VIP down or slow) gives the claim back: nothing was compared. A code VIP
accepted is claimed once more here, atomically (its keyed hash and time step): a replay, or a
parallel request with the same code, loses even if VIP itself would accept it twice.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from flask import current_app
from sqlalchemy import bindparam, or_, update
from sqlalchemy.orm.attributes import set_committed_value

from portal import vip
from portal.accounts import lockout
from portal.extensions import db
from portal.mfa import totp
from portal.mfa.codes import normalise_code
from portal.mfa.errors import AccountLocked, InvalidCode, MalformedCode
from portal.models import MfaEnrollment, User
from portal.vip import client
from portal.vip.errors import (
    CredentialNotBound,
    SameSecurityCodes,
    SecurityCodesRejected,
    ServiceRefused,
    ServiceUnavailable,
    UnknownCredentialId,
    VipCodeNotChecked,
    VipUnavailable,
)

# A code equal to the last one accepted is a replay for this many 30-second steps (10 minutes:
# longer than any drift VIP allows); after that, the same six digits are a new code.
REPLAY_STEPS = 20

WRONG_CODE = "That code is not correct. Enter the security code VIP Access shows now."
USED_CODE = "That code was already used. Wait for VIP Access to show a new code, then enter it."


def code_digest(user_id: int, code: str) -> str:
    """Keyed hash of an accepted code (from SECRET_KEY): the code itself is never stored."""
    key = hashlib.sha256(b"portal.vip.code:" + current_app.config["SECRET_KEY"].encode()).digest()
    return hmac.new(key, f"{user_id}|{code}".encode(), hashlib.sha256).hexdigest()


def _pay_for_attempt(user: User, now: datetime) -> None:
    """Claim one allowed wrong code and commit it (raises AccountLocked when none is left)."""
    lockout.claim_attempt(user, lockout.CODE, now)
    db.session.commit()


def _give_back(user: User) -> None:
    """VIP never answered: the claimed attempt compared nothing. Commits."""
    db.session.rollback()
    db.session.execute(update(User).where(User.id == user.id, User.mfa_failed_count > 0)
                       .values(mfa_failed_count=User.mfa_failed_count - 1)
                       .execution_options(synchronize_session=False))
    db.session.commit()
    db.session.expire(user)


def _wrong(user: User, now: datetime, error: Exception) -> Exception:
    """The claimed attempt stays a failure (committed); the one that locks says so."""
    db.session.rollback()
    if lockout.attempt_failed(user, lockout.CODE, now):
        return AccountLocked(lockout.CODE.duration())
    return error


def bind(user: User, raw_credential_id: str, raw_first: str, raw_second: str, *, now: datetime) -> tuple[str, str]:
    """Bind the credential to the user's VIP user, VIP checking the two consecutive codes.
    Returns (Credential ID, the second code's keyed hash). Commits the attempt's accounting.

    Raises MalformedCredentialId, MalformedCode, SameSecurityCodes (none of them counted),
    AccountLocked, UnknownCredentialId, SecurityCodesRejected (counted), VipUnavailable (not
    counted; the binding may have been made: the caller queues its removal).
    """
    credential_id = vip.normalise_credential_id(raw_credential_id)
    try:
        first, second = normalise_code(raw_first), normalise_code(raw_second)
    except MalformedCode:
        raise MalformedCode("Enter both security codes from VIP Access: six digits each.") from None
    if first == second:
        raise SameSecurityCodes()
    _pay_for_attempt(user, now)
    service, vip_user = vip.service(), vip.vip_user_id(user.id)
    try:
        service.create_user(vip_user)
        service.add_credential(vip_user, credential_id, first, second)
    except ServiceUnavailable as error:
        _give_back(user)
        raise VipUnavailable() from error
    except ServiceRefused as refused:
        if refused.code == client.CREDENTIAL_UNKNOWN:
            raise _wrong(user, now, UnknownCredentialId()) from refused
        raise _wrong(user, now, SecurityCodesRejected()) from refused
    lockout.attempt_succeeded(user, lockout.CODE)
    return credential_id, code_digest(user.id, second)


_enrollments = MfaEnrollment.__table__
# Claim an accepted code atomically: the same code again (a replay, or a parallel request that
# VIP also accepted) matches no row.
_CLAIM_CODE = (
    update(_enrollments)
    .where(_enrollments.c.id == bindparam("enrollment_id"),
           or_(_enrollments.c.vip_last_code.is_(None), _enrollments.c.vip_last_code != bindparam("digest"),
               _enrollments.c.vip_last_step.is_(None),
               _enrollments.c.vip_last_step < bindparam("step") - REPLAY_STEPS))
    .values(vip_last_code=bindparam("digest"), vip_last_step=bindparam("step"))
)


def _is_replay(enrollment: MfaEnrollment, digest: str, step: int) -> bool:
    return enrollment.vip_last_code is not None and hmac.compare_digest(enrollment.vip_last_code, digest) \
        and enrollment.vip_last_step is not None and step - enrollment.vip_last_step <= REPLAY_STEPS


def check(user: User, enrollment: MfaEnrollment, raw_code: str, *, now: datetime) -> int:
    """Accept a code of the user's VIP Access credential once, or raise. Returns the time step
    it was accepted in. Failures are committed; success is not (the caller commits it).

    Raises MalformedCode (not counted), AccountLocked, InvalidCode (wrong or used: counted),
    CredentialNotBound, VipCodeNotChecked (VIP down or slow: not counted, and no way around it).
    """
    code = normalise_code(raw_code)
    enrollment_id, digest, step = enrollment.id, code_digest(user.id, code), totp.step_at(now)
    _pay_for_attempt(user, now)
    if _is_replay(db.session.get(MfaEnrollment, enrollment_id), digest, step):
        raise _wrong(user, now, InvalidCode(USED_CODE))
    try:
        vip.service().authenticate(vip.vip_user_id(user.id), code)
    except ServiceUnavailable as error:
        _give_back(user)
        raise VipCodeNotChecked() from error
    except ServiceRefused as refused:
        if refused.code == client.AUTHENTICATION_FAILED:
            raise _wrong(user, now, InvalidCode(WRONG_CODE)) from refused
        _give_back(user)
        raise CredentialNotBound() from refused
    claimed = db.session.execute(_CLAIM_CODE, {"enrollment_id": enrollment_id, "digest": digest,
                                               "step": step}).rowcount
    if claimed != 1:
        raise _wrong(user, now, InvalidCode(USED_CODE))
    row = db.session.get(MfaEnrollment, enrollment_id)
    set_committed_value(row, "vip_last_code", digest)
    set_committed_value(row, "vip_last_step", step)
    lockout.attempt_succeeded(user, lockout.CODE)
    return step
