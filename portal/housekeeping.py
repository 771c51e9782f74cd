"""House-keeping: remove rows that no longer do anything, in batches, and say how many.

One function per job; each takes the time to judge by (`now`, never the wall clock) and
returns how many rows it removed. They are plain services: whatever runs them on a schedule
(the task queue, the CLI, a test) calls them inside an app context.

Each job deletes in batches of `HOUSEKEEPING_BATCH_SIZE` rows, one statement per batch:
``DELETE ... WHERE id IN (SELECT id ... ORDER BY id LIMIT :n)``, committed at once, until a
batch removes fewer rows than the batch size. On PostgreSQL the subquery takes its rows
``FOR UPDATE SKIP LOCKED``, so several consumers can run the same job at once: each removes
rows the others have not claimed, none waits on another, and no row is counted twice. SQLite
serialises writers (each batch waits for the write lock, up to the busy timeout).

Retention (config.py):

- used or expired MFA codes are kept `HOUSEKEEPING_CODE_RETENTION` after they were created,
  and never less than 1 day + `MFA_CODE_TTL`: the send limits count codes of the last day
  (`MFA_SMS_PER_NUMBER_PER_DAY`, `MFA_SMS_GLOBAL_PER_DAY`), and a code that old has expired;
- spent invitations and password resets are kept `HOUSEKEEPING_TOKEN_RETENTION` after they
  stopped working (expired, used, accepted or revoked); a link still usable is never removed;
- dev outbox messages are kept `HOUSEKEEPING_OUTBOX_RETENTION`;
- expired pending set-ups and expired session rows (which hold pending Log Ins) go at once.
  With sessions in Redis there are no session rows: Redis expires its keys itself.

The audit trail (`audit_events`) is never touched: it keeps the events of whatever is removed.
Nothing references the tables cleaned here by foreign key, so no row is kept for that reason.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, or_, select

from portal.extensions import db
from portal.models import Invitation, MfaCode, MfaPendingEnrollment, OutboxMessage, PasswordReset, ServerSession

# The longest window the send limits read (codes per number and in all per day).
SEND_LIMIT_WINDOW = timedelta(days=1)


def code_retention() -> timedelta:
    """How long used or expired codes are kept: the setting, but at least 1 day + a code's life."""
    config = current_app.config
    return max(config["HOUSEKEEPING_CODE_RETENTION"], SEND_LIMIT_WINDOW + config["MFA_CODE_TTL"])


def remove_old_codes(*, now: datetime, batch_size: int | None = None) -> int:
    """Remove MFA codes created at least the code retention ago that are used, voided or
    expired; live codes stay whatever their age. Commits after each batch."""
    cutoff = now - code_retention()
    return _delete_in_batches(
        MfaCode,
        MfaCode.created_at <= cutoff,
        or_(MfaCode.consumed_at.is_not(None), MfaCode.voided_at.is_not(None), MfaCode.expires_at <= now),
        batch_size=batch_size,
    )


def remove_expired_setups(*, now: datetime, batch_size: int | None = None) -> int:
    """Remove methods being set up whose time is over. Commits after each batch."""
    return _delete_in_batches(MfaPendingEnrollment, MfaPendingEnrollment.expires_at <= now, batch_size=batch_size)


def remove_expired_sessions(*, now: datetime, batch_size: int | None = None) -> int:
    """Remove expired server-side session rows, pending Log Ins included (they live in the
    session). With sessions in Redis the table is empty and this removes nothing. Commits after
    each batch."""
    return _delete_in_batches(ServerSession, ServerSession.expiry <= now, batch_size=batch_size)


def remove_old_invitations(*, now: datetime, batch_size: int | None = None) -> int:
    """Remove invitations that expired, were accepted or were revoked at least the token
    retention ago; an invitation that can still be accepted stays. Commits after each batch."""
    cutoff = now - current_app.config["HOUSEKEEPING_TOKEN_RETENTION"]
    return _delete_in_batches(
        Invitation,
        or_(Invitation.expires_at <= cutoff, Invitation.accepted_at <= cutoff, Invitation.revoked_at <= cutoff),
        batch_size=batch_size,
    )


def remove_old_password_resets(*, now: datetime, batch_size: int | None = None) -> int:
    """Remove password resets that expired or were used at least the token retention ago; a
    reset link that still works stays. Commits after each batch."""
    cutoff = now - current_app.config["HOUSEKEEPING_TOKEN_RETENTION"]
    return _delete_in_batches(
        PasswordReset,
        or_(PasswordReset.expires_at <= cutoff, PasswordReset.used_at <= cutoff),
        batch_size=batch_size,
    )


def remove_old_outbox_messages(*, now: datetime, batch_size: int | None = None) -> int:
    """Remove dev outbox messages older than the outbox retention. Commits after each batch."""
    cutoff = now - current_app.config["HOUSEKEEPING_OUTBOX_RETENTION"]
    return _delete_in_batches(OutboxMessage, OutboxMessage.created_at <= cutoff, batch_size=batch_size)


# (key in run_all's answer, words for the log line, job)
JOBS = (
    ("codes", "used or expired MFA codes", remove_old_codes),
    ("setups", "expired pending set-ups", remove_expired_setups),
    ("sessions", "expired session rows", remove_expired_sessions),
    ("invitations", "spent invitations", remove_old_invitations),
    ("password_resets", "spent password resets", remove_old_password_resets),
    ("outbox_messages", "old dev outbox messages", remove_old_outbox_messages),
)


def run_all(*, now: datetime) -> dict[str, int]:
    """Run every job with the configured batch size; log one line per job and return how many
    rows each removed, by job (`codes`, `setups`, `sessions`, `invitations`,
    `password_resets`, `outbox_messages`). Commits."""
    removed = {}
    for key, what, job in JOBS:
        removed[key] = count = job(now=now)
        current_app.logger.info("house-keeping: removed %s %s", count, what)
    return removed


def _delete_in_batches(model, *conditions, batch_size: int | None) -> int:
    size = current_app.config["HOUSEKEEPING_BATCH_SIZE"] if batch_size is None else batch_size
    if size < 1:
        raise ValueError(f"batch size must be at least 1, not {size}")
    chosen = select(model.id).where(*conditions).order_by(model.id).limit(size)
    if db.session.get_bind().dialect.name == "postgresql":
        # Rows another consumer has claimed are skipped, not waited for (and not counted twice).
        chosen = chosen.with_for_update(skip_locked=True)
    statement = delete(model).where(model.id.in_(chosen)).execution_options(synchronize_session=False)
    total = 0
    while True:
        try:
            removed = db.session.execute(statement).rowcount
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
        total += removed
        if removed < size:
            return total
