"""Account locks after repeated failures, for passwords and for codes, with one email per lock.

Both factors share one counter mechanism: an atomic increment on the user's row, a lock at
the configured maximum, an audit event and one email when it locks.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app, has_request_context, request
from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm.attributes import set_committed_value

from portal import audit, metrics
from portal.accounts.errors import PasswordLocked
from portal.extensions import db
from portal.mfa.errors import AccountLocked
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
    locked_error: type  # raised with how long the lock still runs

    def maximum(self) -> int:
        return current_app.config[self.max_setting]

    def duration(self) -> timedelta:
        return current_app.config[self.duration_setting]


PASSWORD = Counter("password", "failed_password_count", "password_locked_until", "PASSWORD_MAX_FAILURES",
                   "PASSWORD_LOCK_DURATION", "login.locked", PasswordLocked)
CODE = Counter("code", "mfa_failed_count", "mfa_locked_until", "MFA_MAX_FAILED_CODES", "MFA_LOCK_DURATION",
               "mfa.locked", AccountLocked)


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
    db.session.execute(
        update(User).where(User.id == user.id).values({column: column + 1})
        .execution_options(synchronize_session=False)
    )
    return attempt_failed(user, counter, now)


def claim_attempt(user: User, counter: Counter, now: datetime) -> None:
    """Take one of the attempts the account has left before comparing anything. Not committed.

    One conditional UPDATE ... RETURNING decides it: the count goes up only while it is below
    the limit and no lock runs, so of any number of parallel guesses at most the limit are
    ever compared, and none while the account is locked (a right code included). The row
    stays locked (PostgreSQL) or the database's writer lock held (SQLite) until the caller's
    transaction ends, so parallel attempts on one account are decided one after another.
    Raises the counter's lock error (AccountLocked for codes) when no attempt is left.
    """
    count_column, until_column = getattr(User, counter.count_column), getattr(User, counter.until_column)
    claimed = db.session.execute(
        update(User)
        .where(User.id == user.id, count_column < counter.maximum(),
               or_(until_column.is_(None), until_column <= now))
        .values({count_column: count_column + 1})
        .returning(count_column)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if claimed is None:
        until = db.session.scalar(select(until_column).where(User.id == user.id))
        db.session.rollback()
        raise counter.locked_error(until - now if until is not None and until > now else counter.duration())
    set_committed_value(user, counter.count_column, claimed)


def claim_success(user: User, counter: Counter, now: datetime, *, guard=None, guard_params: dict | None = None,
                  **values) -> bool:
    """A right answer compared before anything was paid for: the count starts over, the lock
    is cleared and `values` (more columns of the user) are written, in one conditional UPDATE
    that holds only while attempts are left, no lock runs and `guard` holds: a condition on the
    users table's columns built once (such as "this code's time step was not used yet"),
    whose bound parameters come in `guard_params`. Not committed.

    Returns False, writing nothing, if only the guard failed. Raises the counter's lock error
    (rolled back: with whatever the right answer had claimed) if a lock landed since the user
    was read."""
    written = {counter.count_column: 0, counter.until_column: None, **values}
    claimed = db.session.execute(
        _success_statement(counter, tuple(written), guard),
        {"uid": user.id, "maximum": counter.maximum(), "now": now, **(guard_params or {}),
         **{f"set_{name}": value for name, value in written.items()}},
    ).rowcount
    if claimed != 1:
        table = User.__table__
        count, until = db.session.execute(
            select(table.c[counter.count_column], table.c[counter.until_column]).where(table.c.id == user.id)).one()
        if guard is not None and count < counter.maximum() and (until is None or until <= now):
            return False
        db.session.rollback()
        raise counter.locked_error(until - now if until is not None and until > now else counter.duration())
    for name, value in written.items():  # what the statement wrote, so the session does not write it again
        set_committed_value(user, name, value)
    return True


@functools.cache
def _success_statement(counter: Counter, names: tuple[str, ...], guard):
    """claim_success's UPDATE, built once per shape: every Log In runs it, and building it (and
    its cache key) anew each time cost as much as running it. On the users table rather than
    the mapped class, so it skips the ORM's UPDATE handling, which does nothing for it."""
    table = User.__table__
    count_column, until_column = table.c[counter.count_column], table.c[counter.until_column]
    conditions = [table.c.id == bindparam("uid"), count_column < bindparam("maximum"),
                  or_(until_column.is_(None), until_column <= bindparam("now"))]
    if guard is not None:
        conditions.append(guard)
    return update(table).where(*conditions).values({name: bindparam(f"set_{name}") for name in names})


def attempt_failed(user: User, counter: Counter, now: datetime) -> bool:
    """The claimed attempt was wrong: it stays counted, and the account locks if that was the
    last one. Commits (a failure counts even though the request fails). Returns True if it
    locked now (that request says so)."""
    duration = counter.duration()
    locked = db.session.execute(
        update(User)
        .where(User.id == user.id, getattr(User, counter.count_column) >= counter.maximum())
        .values({counter.count_column: 0, counter.until_column: now + duration})
        .returning(User.id)
        .execution_options(synchronize_session=False)
    ).first() is not None
    if locked:
        audit.record(counter.lock_event, outcome="failure", subject=user, now=now,
                     detail={"factor": counter.factor, "failures": counter.maximum(), "minutes": minutes(duration)})
        metrics.locked(counter.factor)
    db.session.commit()
    db.session.refresh(user)
    if locked:
        _notify_locked(user, counter, now)
    return locked


def attempt_succeeded(user: User, counter: Counter) -> None:
    """The claimed attempt was right: the count starts over. Not committed: it is written with
    what the attempt unlocks, in the same UPDATE of the user (`claim_attempt` recorded the
    claimed count as the loaded value, so the change is always seen)."""
    setattr(user, counter.count_column, 0)
    if getattr(user, counter.until_column) is not None:
        setattr(user, counter.until_column, None)


def unlock(user: User, *, actor: User, reason: str, now: datetime) -> None:
    """Support ends a password or code lock early (the person was checked). Commits; audited.
    Raises ReasonRequired-like AccountError without a reason."""
    from portal.accounts.errors import AccountError

    reason = (reason or "").strip()
    if not reason:
        raise AccountError("Give a reason.")
    for counter in (PASSWORD, CODE):
        setattr(user, counter.count_column, 0)
        setattr(user, counter.until_column, None)
    audit.record("support.unlocked", actor=actor, subject=user, now=now, detail={"reason": reason[:500]})
    db.session.commit()


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
    jobs.notify(user.email, "Your account was locked after failed Log In attempts", "account_locked", **context)
