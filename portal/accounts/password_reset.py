"""Forgot password: an emailed single-use link that lets a user choose a new password.

A reset never logs the user in and never touches MFA; it ends every other session.
"""

from __future__ import annotations

from datetime import datetime

from flask import current_app
from sqlalchemy import update

from portal import audit
from portal.accounts import passwords, tokens
from portal.accounts.errors import InvalidToken, TokenExpired
from portal.accounts.users import end_all_sessions, find_by_email
from portal.delivery import send_email
from portal.extensions import db
from portal.models import PasswordReset, User

PURPOSE = "password-reset"


def request_reset(email: str, *, now: datetime) -> None:
    """Email a reset link if an active account has this address; otherwise do nothing.

    The caller shows the same response either way. Earlier unused links for the user are
    voided so only the newest works. Raises DeliveryError for a known address whose email
    could not be sent (the caller still shows the generic response).
    """
    user = find_by_email(email)
    if user is None or not user.active or user.password_hash is None:
        return
    db.session.execute(
        update(PasswordReset)
        .where(PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    lifetime = current_app.config["PASSWORD_RESET_MAX_AGE"]
    reset = PasswordReset(user_id=user.id, created_at=now, expires_at=now + lifetime)
    link = tokens.issue_link(reset, PURPOSE, "auth.reset_password")
    try:
        send_email(
            user.email,
            f"Reset your {current_app.config['PORTAL_NAME']} password",
            "password_reset",
            user=user,
            link=link,
            minutes=int(current_app.config["PASSWORD_RESET_MAX_AGE"].total_seconds() // 60),
        )
    except Exception:
        db.session.rollback()
        raise
    audit.record("password_reset.requested", subject=user, now=now)
    db.session.commit()


def load(token: str, *, now: datetime) -> PasswordReset:
    """Return the open reset a link points to. Raises InvalidToken, TokenExpired, TokenUsed."""
    reset = tokens.load_record(PasswordReset.used_at, PURPOSE, token)
    if now >= reset.expires_at:
        raise TokenExpired()
    if not reset.user.active:
        raise InvalidToken()
    return reset


def reset_password(token: str, password: str, *, now: datetime) -> User:
    """Set a new password, use up the link and end every session of the user.

    Raises InvalidToken, TokenExpired, TokenUsed, WeakPassword. Does not log anyone in.
    """
    reset = load(token, now=now)
    passwords.check_policy(password)
    tokens.claim(PasswordReset.used_at, reset.id, now)
    user = reset.user
    user.password_hash = passwords.hash_password(password)
    end_all_sessions(user)
    audit.record("password_reset.completed", actor=user, subject=user, now=now)
    db.session.commit()
    return user
