"""The tasks: notices (each sent once), practice-wide notices in batches, periodic upkeep."""

from __future__ import annotations

import secrets
from datetime import datetime

from flask import current_app
from huey import crontab
from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from portal.delivery import send_email, send_sms
from portal.extensions import db
from portal.models import MfaEnrollment, Practice, SentNotice, User
from portal.tasks import enqueue, periodic, requeue_deferred, task
from portal.wording import format_time

__all__ = ["claim", "enqueue", "notify", "notify_by_text", "person", "practice_notices"]


def new_key(kind: str) -> str:
    """A notice key for one event: the same task run twice finds it already claimed."""
    return f"{kind}:{secrets.token_hex(12)}"


def _once(key: str, send) -> bool:
    """Claim `key`, send, and keep the claim only if the send worked. False if already sent.

    The claim is a unique row written in the same transaction as the send's outcome: a second
    run of the task (a retry after a crash, or another consumer) finds it and sends nothing; a
    failed send rolls the claim back, so the retry sends.
    """
    try:
        db.session.execute(insert(SentNotice).values(key=key))
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return False
    try:
        send()
    except Exception:
        db.session.rollback()
        raise
    db.session.commit()
    return True


@task
def email_notice(key: str, to: str, subject: str, template: str, context: dict) -> bool:
    """Send one notice email, once. Raises DeliveryError (the queue retries with back-off)."""
    return _once(key, lambda: send_email(to, subject, template, **context))


@task
def text_notice(key: str, to: str, body: str) -> bool:
    """Send one notice text message, once. Raises DeliveryError (retried)."""
    return _once(key, lambda: send_sms(to, body))


def notify(to: str, subject: str, template: str, **context) -> None:
    """Queue a notice email (after the caller's commit); `context` holds plain values only."""
    enqueue(email_notice, new_key(template), to, subject, template, context)


def notify_by_text(to: str, body: str) -> None:
    enqueue(text_notice, new_key("text"), to, body)


def person(user: User) -> dict:
    """What a notice template may say about its addressee (plain values for the queue)."""
    return {"id": user.id, "display_name": user.display_name, "email": user.email}


_WITHOUT_MFA = (
    select(User.id, User.email, User.display_name)
    .outerjoin(MfaEnrollment, MfaEnrollment.user_id == User.id)
    .where(User.practice_id == bindparam("practice_id"), User.active.is_(True), MfaEnrollment.id.is_(None),
           User.id > bindparam("after"))
    .order_by(User.id)
    .limit(bindparam("size"))
)


def claim(key: str) -> bool:
    """Claim a one-time key (committed); False if it was claimed before, by anyone."""
    return _once(key, lambda: None)


# What each practice-wide notice says: (subject, template). `{starts}` is the start, with its zone.
PRACTICE_NOTICES = {
    "now": ("Your practice now requires multi-factor authentication", "mfa_required"),
    "scheduled": ("Your practice will require multi-factor authentication from {starts}", "mfa_required_from"),
    "week": ("Reminder: multi-factor authentication is required from {starts}", "mfa_required_from"),
    "day": ("Reminder: multi-factor authentication is required from tomorrow, {starts}", "mfa_required_from"),
    "today": ("Multi-factor authentication is now required: set it up at your next Log In", "mfa_required_from"),
    "cancelled": ("Your practice no longer requires multi-factor authentication", "mfa_requirement_cancelled"),
}


def _still_wanted(practice: Practice | None, kind: str, starts: str | None) -> bool:
    """A batch of a change that was undone or moved meanwhile sends nothing more."""
    if practice is None:
        return False
    if kind == "cancelled":
        return not practice.mfa_required
    if kind == "now":
        return practice.mfa_required and practice.mfa_required_from is None
    return practice.mfa_required and practice.mfa_required_from is not None \
        and practice.mfa_required_from.isoformat() == starts


@task
def practice_notices(practice_id: int, kind: str, change: str, starts: str | None = None, after: int = 0) -> int:
    """Email each active user without MFA of the practice about its requirement (`kind`: see
    PRACTICE_NOTICES), one batch of users per task: the batch queues the next one first, then
    sends its own notices.

    A practice of 50,000 users is many small tasks. Each notice's key carries the change and
    the user, so a batch that is retried (a refusing mail server) or runs twice sends each
    notice once. Returns how many this batch sent.
    """
    practice = db.session.get(Practice, practice_id)
    if not _still_wanted(practice, kind, starts):
        return 0
    size = current_app.config["QUEUE_BATCH_SIZE"]
    rows = db.session.execute(_WITHOUT_MFA, {"practice_id": practice_id, "after": after, "size": size}).all()
    db.session.rollback()  # nothing held open while mail is sent
    if len(rows) == size:
        enqueue(practice_notices, practice_id, kind, change, starts, rows[-1].id)
    subject, template = PRACTICE_NOTICES[kind]
    when = format_time(datetime.fromisoformat(starts)) if starts else None
    subject = subject.format(starts=when)
    sent = 0
    for row in rows:
        context = {"user": {"display_name": row.display_name}, "practice_name": practice.name, "starts": when,
                   "kind": kind}
        sent += _once(f"practice:{change}:{row.id}",
                      lambda row=row, context=context: send_email(row.email, subject, template, **context))
    return sent


@periodic(crontab(minute="5"))
def requirement_reminders() -> list:
    """Every hour: queue the reminders due before practices' start dates."""
    from portal import clock
    from portal.enforcement import requirement

    return requirement.send_due_reminders(clock.now())


@periodic(crontab(minute="*/15"))
def house_keeping() -> dict[str, int]:
    """Every quarter hour: remove what has expired (codes, set-ups, sessions, links, outbox)."""
    from portal import clock, housekeeping

    return housekeeping.run_all(now=clock.now())


@periodic(crontab(minute="*"))
def requeue_kept_tasks() -> int:
    """Every minute: hand tasks kept during a queue outage back to the queue."""
    return requeue_deferred()


# -- the audit trail's sealer and checkpoints (portal/audit/seal.py) ---------------------------


@task
def seal_audit_trail() -> int:
    """One sealing pass: chain and MAC the audit events committed since the last pass. Safe on
    several consumers at once (a pass that finds another at work returns). A database that is
    busy or away skips this pass with a warning: the next one, seconds later, tries again, and
    `flask audit verify` reports rows that wait too long."""
    import logging

    from sqlalchemy.exc import OperationalError

    from portal.audit import seal

    try:
        return seal.seal_pending()
    except OperationalError as error:
        logging.getLogger("portal.audit.seal").warning("sealing pass skipped: %s", type(error.orig).__name__)
        return 0


def schedule_sealing_passes(seconds: int) -> list[int]:
    """Queue sealing passes every `seconds` until the next minute's periodic run (each expires
    if a busy queue cannot start it within a minute). Returns their delays."""
    delays = list(range(seconds, 60, seconds)) if 0 < seconds < 60 else []
    for delay in delays:
        seal_audit_trail.schedule(delay=delay, expires=delay + 60)
    return delays


@periodic(crontab(minute="*"))
def audit_sealing() -> int:
    """Every minute: seal now, and queue the passes that seal every AUDIT_SEAL_SECONDS (default
    10 s) until the next minute. (Huey's schedule is per minute at best; queued one-off passes
    keep each task short, so no worker sleeps through the minute and a consumer stops promptly.)"""
    from portal.audit import seal

    schedule_sealing_passes(current_app.config["AUDIT_SEAL_SECONDS"])
    return seal.seal_pending()


@periodic(crontab(minute="*"))
def audit_checkpoint() -> dict | None:
    """Every minute: seal what waits, then write a signed checkpoint if AUDIT_CHECKPOINT_SECONDS
    (default 5 minutes) have passed since the last one (under the seal lock: one consumer does)."""
    from portal.audit import seal

    seal.seal_pending()
    return seal.write_checkpoint()
