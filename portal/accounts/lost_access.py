"""Lost access: a user who cannot use their MFA method (a lost phone) asks support to clear it,
and support clears it or declines. Users cannot turn MFA off themselves; this only asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal import audit, metrics
from portal.extensions import db
from portal.mfa import enrollment, methods
from portal.mfa.errors import CannotClear
from portal.models import LostAccessRequest, User
from portal.tasks import jobs


def request_clear(user: User | None, *, now: datetime) -> None:
    """File a request for `user`: someone who just entered their password (the code step) or is
    logged in with a fresh password. Commits; audits; emails the user a notice (queued).

    For None (reached otherwise), for a user without MFA, and while a request is open, nothing
    is filed: the answer is the same "request sent" whatever happened, so the page tells nobody
    whether an account exists.
    """
    if user is None or user.mfa is None or open_request_of(user.id) is not None:
        return
    request = LostAccessRequest(user_id=user.id, status="open", created_at=now)
    db.session.add(request)
    try:
        db.session.flush()
    except IntegrityError:  # a parallel request won the one open slot
        db.session.rollback()
        return
    audit.record("mfa.lost_access_requested", actor=user, subject=user, now=now,
                 detail={"request": request.id, "method": user.mfa.method})
    db.session.commit()
    jobs.notify(user.email, "A request to clear your multi-factor authentication was made", "lost_access_requested",
                user=jobs.person(user))


def open_request_of(user_id: int) -> LostAccessRequest | None:
    return db.session.scalar(select(LostAccessRequest).where(LostAccessRequest.user_id == user_id,
                                                             LostAccessRequest.status == "open"))


@dataclass(frozen=True)
class QueueRow:
    """An open request as support's queue shows it: never a full phone number or a secret."""

    request: LostAccessRequest
    user: User
    method: str | None  # as a sentence names it, with its masked destination
    practice_admins: list[str]


def open_requests() -> list[QueueRow]:
    """Open requests, oldest first, with what support needs to call the user back."""
    rows = []
    for request in db.session.scalars(select(LostAccessRequest).where(LostAccessRequest.status == "open")
                                      .order_by(LostAccessRequest.id)):
        user = request.user
        method = methods.of(user.mfa)
        admins = [] if user.practice_id is None else list(db.session.scalars(
            select(User.display_name).where(User.practice_id == user.practice_id, User.role == "practice_admin",
                                            User.active.is_(True)).order_by(User.display_name)))
        rows.append(QueueRow(request, user, method.described(method.masked_destination(user, user.mfa))
                             if method else None, admins))
    return rows


def clear(request: LostAccessRequest, *, actor: User, reason: str, ticket: str, now: datetime) -> None:
    """Clear the user's MFA (reason and ticket, as any clear) and close the request. Commits.

    Raises CannotClear (request already answered, own account, reason or ticket missing,
    nothing to clear).
    """
    if request.status != "open":
        raise CannotClear("This request was already answered.")
    enrollment.clear_by_support(request.user, actor=actor, reason=reason, ticket=ticket, now=now)
    _close(request, actor=actor, status="cleared", note=f"Ticket {ticket.strip()[:100]}", now=now)


def decline(request: LostAccessRequest, *, actor: User, note: str, now: datetime) -> None:
    """Decline with a note that is emailed to the user. Commits. Raises CannotClear."""
    note = (note or "").strip()
    if request.status != "open":
        raise CannotClear("This request was already answered.")
    if not note:
        raise CannotClear("Give a note for the user: it is emailed to them.")
    _close(request, actor=actor, status="declined", note=note[:1000], now=now)
    jobs.notify(request.user.email, "Your request to clear multi-factor authentication", "lost_access_declined",
                user=jobs.person(request.user), note=note[:1000])


def _close(request: LostAccessRequest, *, actor: User, status: str, note: str, now: datetime) -> None:
    request.status, request.decided_by_id, request.decided_at, request.decision_note = status, actor.id, now, note
    audit.record("mfa.lost_access_decided", actor=actor, subject=request.user, now=now,
                 detail={"request": request.id, "outcome": status})
    db.session.commit()
    metrics.support_action("request_decided")
