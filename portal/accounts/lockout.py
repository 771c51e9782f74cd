"""Account locks after repeated failures, for passwords and for codes, with one email per lock."""

from __future__ import annotations

from datetime import datetime

from flask import current_app, has_request_context, request
from sqlalchemy import select, update

from portal import audit
from portal.delivery import DeliveryError, send_email
from portal.extensions import db
from portal.models import User


def password_locked(user: User, now: datetime) -> bool:
    return user.password_locked_until is not None and user.password_locked_until > now


def record_password_failure(user: User, now: datetime) -> bool:
    """Count a wrong password; lock the account at the limit. Returns True if it locked now.

    The increment is atomic so parallel guesses cannot lose counts. Commits.
    """
    db.session.execute(
        update(User).where(User.id == user.id)
        .values(failed_password_count=User.failed_password_count + 1)
        .execution_options(synchronize_session=False)
    )
    count = db.session.scalar(select(User.failed_password_count).where(User.id == user.id))
    locked = count >= current_app.config["PASSWORD_MAX_FAILURES"]
    if locked:
        duration = current_app.config["PASSWORD_LOCK_DURATION"]
        db.session.execute(
            update(User).where(User.id == user.id)
            .values(failed_password_count=0, password_locked_until=now + duration)
            .execution_options(synchronize_session=False)
        )
        audit.record("login.locked", outcome="failure", subject=user, now=now,
                     detail={"factor": "password", "failures": count, "minutes": int(duration.total_seconds() // 60)})
    db.session.commit()
    db.session.refresh(user)
    if locked:
        notify_locked(user, "password", now)
    return locked


def reset_password_failures(user: User) -> None:
    """Not committed."""
    user.failed_password_count = 0
    user.password_locked_until = None


def notify_locked(user: User, factor: str, now: datetime) -> None:
    """Email the user once per lock: when, from where, which browser. Never a code."""
    context = dict(user=user, factor=factor, when=now.strftime("%Y-%m-%d %H:%M UTC"), address=None, browser=None)
    if has_request_context():
        context["address"] = request.remote_addr
        context["browser"] = (request.user_agent.string or "")[:200] or None
    minutes = int(current_app.config["PASSWORD_LOCK_DURATION" if factor == "password" else "MFA_LOCK_DURATION"].total_seconds() // 60)
    try:
        send_email(user.email, "Your account was locked after failed sign-in attempts", "account_locked",
                   minutes=minutes, **context)
        db.session.commit()
    except DeliveryError:
        current_app.logger.warning("lock notice could not be emailed to user %s", user.id)
