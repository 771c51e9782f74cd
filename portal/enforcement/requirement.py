"""Requiring MFA for a whole practice (all or nothing), and admins' requests for it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal import audit, metrics
from portal.enforcement import review
from portal.enforcement.errors import AlreadyPending, InvalidStart, NoChange, ReasonRequired, RequestClosed
from portal.extensions import db
from portal.models import Practice, RequirementRequest, User
from portal.tasks import jobs
from portal.wording import duration_in_words, format_time


def set_requirement(practice: Practice, required: bool, *, actor: User, reason: str, now: datetime,
                    starts: datetime | None = None, request: RequirementRequest | None = None) -> int:
    """Require MFA for the practice (at once, or from `starts`), move that date, or stop
    requiring it. Commits.

    Returns how many active users without MFA will be emailed. Raises NoChange,
    ReasonRequired, InvalidStart. In force, every active user without MFA is sent to
    enrollment at their next request (the gate checks on every request); before a start date
    they see a banner and get reminders. Notices go through the queue in batches after the
    commit, so the request never loops over users.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired()
    starts = _check_start(practice, required, starts, now) if required else None
    if practice.mfa_required == required and practice.mfa_required_from == starts:
        raise NoChange(required)
    previous = practice.mfa_required_from if practice.mfa_required else None
    practice.mfa_required, practice.mfa_required_from = required, starts
    audit.record(
        "practice.requirement_changed", actor=actor, practice_id=practice.id, now=now,
        detail={"required": required, "from": format_time(starts) if starts else None,
                "previous_from": format_time(previous) if previous else None,
                "reason": reason[:500], "request_id": request.id if request else None},
    )
    db.session.commit()
    metrics.support_action("requirement_changed")
    kind = ("scheduled" if starts else "now") if required else "cancelled"
    jobs.enqueue(jobs.practice_notices, practice.id, kind, jobs.new_key(f"requirement-{kind}"),
                 starts.isoformat() if starts else None)
    return review.counts(practice.id).coverage.without


def _check_start(practice: Practice, required: bool, starts: datetime | None, now: datetime) -> datetime | None:
    """A start date must lie ahead, within the grace period allowed; None means now."""
    if starts is None or starts <= now:
        return None
    longest = current_app.config["MFA_REQUIREMENT_MAX_GRACE"]
    if starts > now + longest:
        raise InvalidStart(f"Choose a start within the next {duration_in_words(longest)}.")
    if practice.requires_mfa_at(now):
        raise InvalidStart("MFA is already required for this practice. Stop requiring it first to set a later start.")
    return starts


def start_of_day(day: date) -> datetime:
    """A chosen start date as a moment: its first minute, UTC (pages show the zone)."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


# Reminders to users without MFA before a start date, as (kind, how long before the start).
REMINDERS = (("week", timedelta(days=7)), ("day", timedelta(days=1)), ("today", timedelta(0)))


def send_due_reminders(now: datetime) -> list[tuple[int, str]]:
    """Queue the reminders that are due: 7 days and 1 day before a practice's start date, and
    on the day. Each is due for one day from its moment (the periodic task runs hourly) and is
    queued once per practice, start date and kind, however often this runs or on how many
    consumers. Returns the (practice id, kind) pairs queued now."""
    queued = []
    practices = db.session.scalars(
        select(Practice).where(Practice.mfa_required.is_(True), Practice.mfa_required_from.is_not(None),
                               Practice.mfa_required_from > now - timedelta(days=1),
                               Practice.mfa_required_from <= now + timedelta(days=7))
    ).all()
    for practice in practices:
        starts = practice.mfa_required_from
        for kind, before in REMINDERS:
            due = starts - before
            change = f"{practice.id}:{starts.isoformat()}:{kind}"
            if due <= now < due + timedelta(days=1) and jobs.claim(f"reminders:{change}"):
                jobs.enqueue(jobs.practice_notices, practice.id, kind, change, starts.isoformat())
                queued.append((practice.id, kind))
    return queued


def make_request(admin: User, *, require: bool, note: str, now: datetime,
                 starts: datetime | None = None) -> RequirementRequest:
    """Record a practice admin's request (to require MFA, from `starts` or at once, or to stop);
    support decides. Commits. Raises NoChange, AlreadyPending, InvalidStart."""
    practice = admin.practice
    starts = _check_start(practice, require, starts, now) if require else None
    if practice.mfa_required == require and practice.mfa_required_from == starts:
        raise NoChange(require)
    if open_request(practice.id) is not None:
        raise AlreadyPending()
    request = RequirementRequest(
        practice_id=practice.id, requested_by_id=admin.id, require=require, required_from=starts,
        note=(note or "").strip()[:1000], status="pending", created_at=now,
    )
    db.session.add(request)
    try:
        db.session.flush()
    except IntegrityError as error:  # another request won the race for the one open slot
        db.session.rollback()
        raise AlreadyPending() from error
    audit.record("practice.request_made", actor=admin, practice_id=practice.id, now=now,
                 detail={"request": request.id, "require": require, "from": format_time(starts) if starts else None})
    db.session.commit()
    return request


def open_request(practice_id: int) -> RequirementRequest | None:
    return db.session.scalar(
        select(RequirementRequest).where(RequirementRequest.practice_id == practice_id,
                                         RequirementRequest.status == "pending")
    )


def open_requests() -> list[RequirementRequest]:
    """Every request waiting for support, oldest first."""
    return list(db.session.scalars(
        select(RequirementRequest).where(RequirementRequest.status == "pending").order_by(RequirementRequest.id)
    ))


def latest_request(practice_id: int) -> RequirementRequest | None:
    return db.session.scalar(
        select(RequirementRequest).where(RequirementRequest.practice_id == practice_id)
        .order_by(RequirementRequest.id.desc()).limit(1)
    )


def decide(request: RequirementRequest, *, actor: User, approve: bool, note: str, now: datetime) -> None:
    """Approve (and apply) or decline a request. Raises RequestClosed, ReasonRequired, NoChange."""
    if request.status != "pending":
        raise RequestClosed()
    note = (note or "").strip()
    if not note:
        raise ReasonRequired("a note for the practice admin")
    request.status = "approved" if approve else "declined"
    request.decided_by_id = actor.id
    request.decided_at = now
    request.decision_note = note[:1000]
    audit.record("practice.request_decided", actor=actor, practice_id=request.practice_id, now=now,
                 detail={"request": request.id, "approved": approve})
    practice = request.practice
    starts = request.required_from if request.required_from and request.required_from > now else None
    changes = practice.mfa_required != request.require or (request.require and practice.mfa_required_from != starts)
    if approve and changes:
        set_requirement(practice, request.require, actor=actor, reason=f"Request #{request.id}: {note}",
                        now=now, starts=starts, request=request)
    else:
        db.session.commit()
    metrics.support_action("request_decided")
