"""The code step of Log In (and of support's confirmation): send a code, check a code."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from portal import audit, metrics
from portal.extensions import db
from portal.mfa import codes, messages, methods
from portal.mfa.errors import MfaError
from portal.models import User


def destination(user: User) -> str | None:
    """Where codes go, masked; None for Authenticator Apps."""
    return methods.of(user.mfa).masked_destination(user, user.mfa)


@dataclass(frozen=True)
class CodePage:
    """What the code page tells the person: the method, where codes go, whether one waits."""

    method: methods.Method
    destination: str | None
    code_state: str | None  # "live", "expired", "used_up" or None: what became of this Log In's code
    resend_wait: int  # seconds until "click here" works again (0: now)


def code_page(user: User, *, challenge: str, now: datetime) -> CodePage:
    method = methods.of(user.mfa)
    if not method.sends_codes:
        return CodePage(method, None, code_state=None, resend_wait=0)
    available_at, state = codes.send_status(user, method.channel.key, method.destination(user, user.mfa), now,
                                            purpose="login", challenge=challenge)
    return CodePage(method, method.masked_destination(user, user.mfa), code_state=state,
                    resend_wait=seconds_until(available_at, now))


def seconds_until(moment: datetime | None, now: datetime) -> int:
    """Whole seconds until `moment`, rounded up (0 for None: already possible)."""
    return int((moment - now).total_seconds()) + 1 if moment else 0


def send_login_code(user: User, *, challenge: str, now: datetime, resend: bool = False) -> None:
    """Send a login code by the user's method, voiding the previous one. Commits.

    Raises SendThrottled, DeliveryFailed (nothing changes on a failure), or the method's own
    error if it sends no codes.
    """
    method = methods.of(user.mfa)
    if not method.sends_codes:
        raise MfaError("Authenticator Apps make their own codes: open your app for the current one.")
    messages.deliver_code(user, method, user.mfa, purpose="login", challenge=challenge, now=now, resend=resend)


def check_code(user: User, raw_code: str, *, challenge: str, now: datetime) -> None:
    """Accept the code of the user's method once, or raise.

    Success is recorded (last use, failure counter reset, "mfa.code_verified") but not
    committed: the caller commits it with what the code unlocks, as one transaction. A
    failure is audited and committed (it counts toward the lock).

    Raises MalformedCode, AccountLocked, InvalidCode, CodeExpired, CodeUsedUp, NoActiveCode,
    and for VIP Access VipCodeNotChecked (VIP down or slow: the Log In waits, there is no way
    around the code) and CredentialNotBound.
    """
    enrollment = user.mfa
    method = methods.of(enrollment)
    try:
        method.check_code(user, enrollment, raw_code, purpose="login", challenge=challenge, now=now,
                          on_success={"last_mfa_at": now})
    except MfaError as error:
        db.session.rollback()
        audit.record("mfa.code_failed", outcome="failure", subject=user, now=now,
                     detail={"method": method.key, "purpose": "login", "reason": type(error).__name__}, commit=True)
        metrics.login("code_failed", method.stored_key)
        raise
    if user.last_mfa_at != now:  # already written by an authenticator's claim (an assignment would flush)
        user.last_mfa_at = now  # SMS and Email write it here
    audit.record("mfa.code_verified", subject=user, now=now, detail={"method": method.key, "purpose": "login"})
