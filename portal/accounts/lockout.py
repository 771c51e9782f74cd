"""Account locks after repeated failures, for passwords and for codes, with one email per lock.

Both factors share one counter mechanism: an atomic increment on the user's row, a lock at
the configured maximum, an audit event and one email when it locks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app, has_request_context, request
from sqlalchemy import update

from portal import audit, metrics
from portal.extensions import db
from portal.models import User
from portal.tasks import jobs
from portal.wording import format_time, minutes


@dataclass(frozen=True)
class Counter:
    """One kind of failure counted against an account."""

    factor: str  # "password" or "code": named in the audit event and the lock email
    count_column: str
    until_column: str
    max_setting: str
    duration_setting: str
    lock_event: str

    def maximum(self) -> int:
        return current_app.config[self.max_setting]

    def duration(self) -> timedelta:
        return current_app.config[self.duration_setting]


PASSWORD = Counter("password", "failed_password_count", "password_locked_until", "PASSWORD_MAX_FAILURES",
                   "PASSWORD_LOCK_DURATION", "login.locked")
CODE = Counter("code", "mfa_failed_count", "mfa_locked_until", "MFA_MAX_FAILED_CODES", "MFA_LOCK_DURATION",
               "mfa.locked")


def locked_until(user: User, counter: Counter, now: datetime) -> datetime | None:
    """When the lock ends, or None if the account is not locked for this factor."""
    until = getattr(user, counter.until_column)
    return until if until is not None and until > now else None


def count_failure(user: User, counter: Counter, now: datetime) -> bool:
    """Count one failure; lock the account at the limit. Returns True if it locked now.

    The increment is one UPDATE ... RETURNING, so parallel failures cannot lose counts.
    Commits (a failure counts even if the caller's request then fails), together with
    whatever the caller added to the transaction (its audit event of the failure).
    """
    column = getattr(User, counter.count_column)
    count = db.session.execute(
        update(User).where(User.id == user.id).values({column: column + 1}).returning(column)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    locked = count >= counter.maximum()
    if locked:
        duration = counter.duration()
        db.session.execute(
            update(User).where(User.id == user.id)
            .values({counter.count_column: 0, counter.until_column: now + duration})
            .execution_options(synchronize_session=False)
        )
        audit.record(counter.lock_event, outcome="failure", subject=user, now=now,
                     detail={"factor": counter.factor, "failures": count,
                             "minutes": minutes(duration)})
        metrics.locked(counter.factor)
    db.session.commit()
    db.session.refresh(user)
    if locked:
        _notify_locked(user, counter, now)
    return locked


def reset(user: User, counter: Counter) -> None:
    """Forget the failures after a success. Not committed."""
    if getattr(user, counter.count_column) or getattr(user, counter.until_column) is not None:
        setattr(user, counter.count_column, 0)
        setattr(user, counter.until_column, None)


def _notify_locked(user: User, counter: Counter, now: datetime) -> None:
    """Queue one email per lock: when, from where, which browser. Never a code."""
    context = dict(user=jobs.person(user), factor=counter.factor, when=format_time(now), address=None, browser=None,
                   minutes=minutes(counter.duration()))
    if has_request_context():
        context["address"] = request.remote_addr
        context["browser"] = (request.user_agent.string or "")[:200] or None
    jobs.notify(user.email, "Your account was locked after failed sign-in attempts", "account_locked", **context)
