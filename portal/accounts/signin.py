"""Log In, Log Out and password re-entry: the services behind the auth views.

Each function is one step a person takes; it owns its transaction and its audit events and
says what happens next. Session state goes through `portal.auth_state`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from portal import audit, auth_state, metrics
from portal.accounts import lockout, passwords, users
from portal.accounts.errors import PasswordLocked, WrongPassword
from portal.extensions import db
from portal.mfa import login as code_step
from portal.mfa import methods, policy
from portal.mfa.errors import AccountLocked, DeliveryFailed, SendThrottled
from portal.models import User


class Next(enum.Enum):
    """What follows a Log In attempt."""

    FAILED = "failed"  # wrong email or password, locked or inactive: one generic answer
    CODE_NEEDED = "code_needed"  # the code page
    MUST_ENROLL = "must_enroll"  # signed in, but only Choose MFA Device is open until a method is set up
    SIGNED_IN = "signed_in"


@dataclass(frozen=True)
class LoginResult:
    next: Next
    # A problem sending the code (throttled, provider down): the code page says it.
    problem: str | None = None


def log_in(email: str, password: str, *, next_url: str | None, now: datetime) -> LoginResult:
    """Check the email and password and start what comes next. Commits.

    With MFA, a pending Log In starts in a new session id and the code is sent (SMS, Email);
    a send that fails is reported in the result, not raised: the code page offers "click here".
    """
    user = users.authenticate(email, password, now=now)
    if user is None:
        known = users.find_by_email(email)
        # Read before the commit below expires it: no extra query, so no timing difference.
        is_locked = known is not None and lockout.locked_until(known, lockout.PASSWORD, now) is not None
        audit.record("login.password_failed", outcome="failure", subject=known, now=now,
                     detail={} if known else {"reason": "unknown email"}, commit=True)
        metrics.login("locked" if is_locked else "password_failed", None)
        return LoginResult(Next.FAILED)
    # Committed before a code is sent (a failed send rolls back its own work); without a
    # method it goes out with the login's own commit.
    audit.record("login.password_succeeded", subject=user, actor=user, now=now)
    if user.mfa is not None:
        # Read before the commit expires the user: an authenticator's Log In needs nothing more.
        stored_key, sends_codes = user.mfa.method, methods.of(user.mfa).sends_codes
        state = auth_state.start_pending(user, next_url=next_url, now=now)
        db.session.commit()
        problem = None
        if sends_codes:
            try:
                code_step.send_login_code(user, challenge=state["challenge"], now=now)
            except (AccountLocked, SendThrottled, DeliveryFailed) as error:
                problem = str(error)
        metrics.login("code_needed", stored_key)
        return LoginResult(Next.CODE_NEEDED, problem)
    if policy.must_enroll(user):
        db.session.commit()
        auth_state.complete_login(user, now, record=False, password_fresh=True)
        metrics.login("must_enroll", None)
        return LoginResult(Next.MUST_ENROLL)
    auth_state.complete_login(user, now, method=None)
    metrics.login("signed_in", None)
    return LoginResult(Next.SIGNED_IN)


def log_in_with_code(user: User, state: dict, raw_code: str, *, now: datetime) -> None:
    """Check the code of a pending Log In and complete it in a new session id. Commits.

    Raises the code step's errors (MfaError), each with its status and message.
    """
    code_step.check_code(user, raw_code, challenge=state["challenge"], now=now)
    auth_state.complete_login(user, now, method=user.mfa.method)
    metrics.login("signed_in", user.mfa.method)


def renew_login(user: User, *, now: datetime, password_fresh: bool) -> None:
    """Sign the user in again in a new session id after their MFA changed (the change ended
    every session, this one included). Nothing is written: the change committed itself."""
    auth_state.complete_login(user, now, record=False, password_fresh=password_fresh)


def log_in_again_with_code(user: User, *, now: datetime) -> str | None:
    """After a user who had to enroll turned on a method at once: end this session and start
    the code step of a new Log In, sending its first code. Commits.

    Returns the problem sending the code, if any (the code page offers "click here").
    """
    auth_state.end_session()
    state = auth_state.start_pending(user, next_url=None, now=now)
    try:
        code_step.send_login_code(user, challenge=state["challenge"], now=now)
    except (AccountLocked, SendThrottled, DeliveryFailed) as error:
        return str(error)
    return None


def log_out(user: User | None) -> None:
    """End this session on the server (also a half-finished Log In). Commits the audit event."""
    if user is not None:
        audit.record("logout", actor=user, subject=user, commit=True)
    auth_state.end_session()


def log_out_everywhere(user: User, *, now: datetime) -> None:
    """End every session of the user on every device, this one included. Commits."""
    users.end_all_sessions(user)
    audit.record("logout.everywhere", actor=user, subject=user, now=now)
    db.session.commit()
    auth_state.end_session()


def expire_session(user: User, reason: str, *, now: datetime) -> None:
    """End a session that ran out of time (idle or absolute). Commits the audit event."""
    audit.record("session.expired", actor=user, subject=user, now=now, detail={"reason": reason}, commit=True)
    auth_state.end_session()


def reauthenticate(user: User, password: str, *, where: str, now: datetime) -> None:
    """Check a re-entered password: one set of rules wherever a password is asked again.

    A locked account is refused even with the right password; a wrong password counts toward
    the same lock as Log In; a right one resets that count. Every outcome is audited ("where"
    names the place). Commits.

    Raises PasswordLocked, WrongPassword.
    """
    correct = passwords.verify_password(user.password_hash, password)
    until = lockout.locked_until(user, lockout.PASSWORD, now)
    if until is not None or not correct:
        audit.record("reauth.failed", outcome="failure", actor=user, subject=user, now=now,
                     detail={"where": where, **({"reason": "locked"} if until else {})})
        if until is not None:
            db.session.commit()
            raise PasswordLocked(until - now)
        lockout.count_failure(user, lockout.PASSWORD, now)
        until = lockout.locked_until(user, lockout.PASSWORD, now)
        raise PasswordLocked(until - now) if until is not None else WrongPassword()
    lockout.reset(user, lockout.PASSWORD)
    audit.record("reauth.succeeded", actor=user, subject=user, now=now, detail={"where": where})
    db.session.commit()


def confirm_password(user: User, password: str, *, now: datetime) -> None:
    """Open Account Settings | Security for a few minutes. Raises PasswordLocked, WrongPassword."""
    reauthenticate(user, password, where="security", now=now)
    auth_state.mark_proven(auth_state.PASSWORD, now)


def confirm_for_support(user: User, password: str, code: str, *, now: datetime) -> None:
    """Open the support area for a while with the password and an authenticator code. Commits.

    Raises PasswordLocked, WrongPassword (nothing else is checked), then the code step's errors.
    """
    reauthenticate(user, password, where="support", now=now)
    code_step.check_code(user, code, challenge="", now=now)
    audit.record("support.confirmed", actor=user, subject=user, now=now)
    db.session.commit()
    auth_state.mark_proven(auth_state.PASSWORD_AND_CODE, now)
