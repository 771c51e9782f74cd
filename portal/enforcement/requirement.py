"""Requiring MFA for a whole practice (all or nothing), and admins' requests for it."""

from __future__ import annotations

from datetime import datetime

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal import audit, metrics
from portal.delivery import DeliveryError, send_email
from portal.enforcement.errors import AlreadyPending, NoChange, ReasonRequired, RequestClosed
from portal.extensions import db
from portal.models import MfaEnrollment, Practice, RequirementRequest, User


def set_requirement(practice: Practice, required: bool, *, actor: User, reason: str, now: datetime,
                    request: RequirementRequest | None = None) -> int:
    """Turn the practice's requirement on or off; returns how many users were notified.

    Raises NoChange, ReasonRequired. Turning it on sends every active user without MFA to
    enrollment at their next request (the gate checks on every request) and emails each a
    notice. Notices are sent after the commit; a failed one is logged, not retried.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired()
    if practice.mfa_required == required:
        raise NoChange(required)
    practice.mfa_required = required
    audit.record(
        "practice.requirement_changed", actor=actor, practice_id=practice.id, now=now,
        detail={"required": required, "reason": reason[:500], "request_id": request.id if request else None},
    )
    db.session.commit()
    metrics.support_action("requirement_changed")
    if not required:
        return 0
    return _notify_users_without_mfa(practice)


def _notify_users_without_mfa(practice: Practice) -> int:
    query = (
        select(User)
        .outerjoin(MfaEnrollment, MfaEnrollment.user_id == User.id)
        .where(User.practice_id == practice.id, User.active.is_(True), MfaEnrollment.id.is_(None))
        .order_by(User.id)
    )
    sent = 0
    for user in db.session.scalars(query):
        try:
            send_email(user.email, "Your practice now requires multi-factor authentication", "mfa_required",
                       user=user, practice_name=practice.name)
            sent += 1
        except DeliveryError:
            current_app.logger.warning("requirement notice could not be emailed to user %s", user.id)
    db.session.commit()
    return sent


def make_request(admin: User, *, require: bool, note: str, now: datetime) -> RequirementRequest:
    """Record a practice admin's request; support decides. Raises NoChange, AlreadyPending."""
    practice = admin.practice
    if practice.mfa_required == require:
        raise NoChange(require)
    if open_request(practice.id) is not None:
        raise AlreadyPending()
    request = RequirementRequest(
        practice_id=practice.id, requested_by_id=admin.id, require=require, note=(note or "").strip()[:1000],
        status="pending", created_at=now,
    )
    db.session.add(request)
    try:
        db.session.flush()
    except IntegrityError as error:  # another request won the race for the one open slot
        db.session.rollback()
        raise AlreadyPending() from error
    audit.record("practice.request_made", actor=admin, practice_id=practice.id, now=now,
                 detail={"request": request.id, "require": require})
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
    if approve and request.practice.mfa_required != request.require:
        set_requirement(request.practice, request.require, actor=actor, reason=f"Request #{request.id}: {note}",
                        now=now, request=request)
    else:
        db.session.commit()
    metrics.support_action("request_decided")
