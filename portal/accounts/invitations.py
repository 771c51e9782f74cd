"""Invitations: how a practice admin adds a user, and how an email becomes verified."""

from __future__ import annotations

from datetime import datetime

from flask import current_app
from sqlalchemy import select, update

from portal import audit
from portal.accounts import passwords, tokens
from portal.accounts.errors import (
    EmailTaken,
    InvalidToken,
    InvitationClosed,
    InvitationNotFound,
    TokenExpired,
    TokenUsed,
)
from portal.accounts.users import create_user, find_by_email, normalise_email
from portal.delivery import send_email
from portal.extensions import db
from portal.models import Invitation, User
from portal.models.user import PRACTICE_ROLES

PURPOSE = "invitation"


def invite(*, admin: User, email: str, display_name: str, role: str, now: datetime) -> Invitation:
    """Create an invitation to the admin's practice and email it.

    Raises InvalidEmail, ValueError (role), DeliveryError. On a delivery failure nothing is
    kept, so the admin can simply try again. Earlier open invitations for the same address and
    practice are revoked, leaving one live link.

    Whether the address already has an account (in this practice, another, or support staff)
    changes nothing the admin can see or time: either way the same invitation record is
    written (its link signed), one email goes out through the same transport within the
    request, the same event is recorded, and the record shows among the open invitations. A
    new address gets the link. The owner of an existing account gets a short notice instead
    (who tried, from which practice) and never the link, so that record can never be
    accepted; it expires like any other.
    """
    if role not in PRACTICE_ROLES:
        raise ValueError(f"Unknown role {role!r}")
    email = normalise_email(email)
    for old in db.session.scalars(
        select(Invitation).where(
            Invitation.email == email,
            Invitation.practice_id == admin.practice_id,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
    ):
        old.revoked_at = now
    invitation = _issue(admin, email=email, display_name=display_name.strip(), role=role, now=now)
    audit.record("invitation.sent", actor=admin, practice_id=admin.practice_id, now=now,
                 detail={"email": email, "role": role})
    db.session.commit()
    return invitation


def resend(*, admin: User, invitation_id: int, now: datetime) -> Invitation:
    """Replace an open invitation of the admin's practice with a new one (a fresh link, the full
    lifetime from now) and email it the way `invite` does; the old link stops working.

    Raises InvitationNotFound (not an invitation of this practice), InvitationClosed (accepted,
    revoked, replaced or expired, perhaps by a request racing this one), DeliveryError. Of
    requests racing on one invitation (resend, revoke, accept) exactly one wins; on a delivery
    failure nothing is kept and the old link still works. Commits.
    """
    old = _close(admin, invitation_id, now)
    invitation = _issue(admin, email=old.email, display_name=old.display_name, role=old.role, now=now)
    audit.record("invitation.resent", actor=admin, practice_id=admin.practice_id, now=now,
                 detail={"email": old.email, "role": old.role})
    db.session.commit()
    return invitation


def revoke(*, admin: User, invitation_id: int, now: datetime) -> Invitation:
    """Withdraw an open invitation of the admin's practice: its link gets the link-problem page.

    Raises InvitationNotFound, InvitationClosed (as `resend`; of racing requests exactly one
    wins, so an accept and a revoke never both succeed). Commits.
    """
    old = _close(admin, invitation_id, now)
    audit.record("invitation.revoked", actor=admin, practice_id=admin.practice_id, now=now,
                 detail={"email": old.email, "role": old.role})
    db.session.commit()
    return old


def _issue(admin: User, *, email: str, display_name: str, role: str, now: datetime) -> Invitation:
    """Add a new invitation (flushed, not committed) and email it: the link to a new address, a
    short notice without it to the owner of an existing account (see `invite`). Raises
    DeliveryError, after rolling back everything the transaction held."""
    owner = find_by_email(email)
    invitation = Invitation(practice_id=admin.practice_id, email=email, display_name=display_name, role=role,
                            invited_by_id=admin.id, created_at=now,
                            expires_at=now + current_app.config["INVITATION_MAX_AGE"])
    link = tokens.issue_link(invitation, PURPOSE, "auth.accept_invitation")
    portal_name = current_app.config["PORTAL_NAME"]
    if owner is None:
        to, subject, template = email, f"You are invited to {portal_name}", "invitation"
        values = dict(invitation=invitation, link=link,
                      hours=int(current_app.config["INVITATION_MAX_AGE"].total_seconds() // 3600))
    else:
        to, subject, template = owner.email, f"Someone tried to invite you to {portal_name}", \
            "invitation_existing_account"
        values = dict(display_name=owner.display_name)
    try:
        send_email(to, subject, template, practice_name=admin.practice.name, inviter_name=admin.display_name,
                   **values)
    except Exception:
        db.session.rollback()
        raise
    return invitation


def _open(now: datetime):
    return (Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None), Invitation.expires_at > now)


def _close(admin: User, invitation_id: int, now: datetime) -> Invitation:
    """Revoke one open invitation of the admin's practice and return it (not committed).

    One conditional UPDATE decides: of requests racing on the invitation (revoke, resend,
    accept: see `accept`), exactly one finds it open. Raises InvitationNotFound,
    InvitationClosed (rolled back).
    """
    closed = db.session.execute(
        update(Invitation)
        .where(Invitation.id == invitation_id, Invitation.practice_id == admin.practice_id, *_open(now))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if closed == 1:
        return db.session.get(Invitation, invitation_id, populate_existing=True)
    db.session.rollback()
    invitation = db.session.get(Invitation, invitation_id, populate_existing=True)
    if invitation is None or invitation.practice_id != admin.practice_id:
        raise InvitationNotFound()
    if invitation.accepted_at is not None:
        raise InvitationClosed(f"{invitation.email} has already accepted this invitation.")
    if invitation.revoked_at is not None:
        if _replaced(invitation):
            raise InvitationClosed(f"The invitation to {invitation.email} was already replaced by a newer one.")
        raise InvitationClosed(f"The invitation to {invitation.email} was already revoked.")
    raise InvitationClosed(f"The invitation to {invitation.email} has expired. Invite them again.")


def _replaced(invitation: Invitation) -> bool:
    """Whether a later invitation went to the same address for the same practice."""
    return db.session.scalar(
        select(Invitation.id).where(Invitation.practice_id == invitation.practice_id,
                                    Invitation.email == invitation.email, Invitation.id > invitation.id).limit(1)
    ) is not None


def _revoked(invitation: Invitation) -> InvalidToken:
    """What the holder of a revoked link is told: replaced by a newer email, or withdrawn."""
    if _replaced(invitation):
        return InvalidToken("This invitation was replaced by a newer one. Use the latest email.")
    return InvalidToken("This invitation was withdrawn by your practice. Ask your practice admin if you still "
                        "need an account.")


def open_for_practice(practice_id: int, *, now: datetime) -> list[Invitation]:
    """Invitations of the practice neither accepted, revoked nor expired, newest first.

    Those sent to an address that already had an account are listed too (no one holds their
    link): the list must not tell the admin which addresses have accounts."""
    return list(db.session.scalars(
        select(Invitation)
        .where(Invitation.practice_id == practice_id, Invitation.accepted_at.is_(None),
               Invitation.revoked_at.is_(None), Invitation.expires_at > now)
        .order_by(Invitation.created_at.desc())
    ))


def load(token: str, *, now: datetime) -> Invitation:
    """Return the open invitation a link points to. Raises InvalidToken, TokenExpired, TokenUsed."""
    invitation = tokens.load_record(Invitation.accepted_at, PURPOSE, token)
    if invitation.revoked_at is not None:
        raise _revoked(invitation)
    if now >= invitation.expires_at:
        raise TokenExpired("This invitation has expired. Ask your practice admin to invite you again.")
    return invitation


def accept(token: str, password: str, *, now: datetime) -> User:
    """Create the invited user with this password and a verified email; use up the link.

    Raises InvalidToken, TokenExpired, TokenUsed, WeakPassword, EmailTaken. The invitation
    row is claimed with a conditional UPDATE that also needs it unrevoked, so of two concurrent
    accepts one creates the user, and an accept racing a revoke or a resend either wins or is
    refused (never both).
    """
    invitation = load(token, now=now)
    passwords.check_policy(password)
    try:
        tokens.claim(Invitation.accepted_at, invitation.id, now, Invitation.revoked_at.is_(None))
    except TokenUsed:
        invitation = db.session.get(Invitation, invitation.id, populate_existing=True)
        if invitation.accepted_at is None and invitation.revoked_at is not None:
            raise _revoked(invitation) from None
        raise
    try:
        user = create_user(
            email=invitation.email,
            display_name=invitation.display_name,
            role=invitation.role,
            practice=invitation.practice,
            password=password,
            email_verified_at=now,
        )
        db.session.flush()
    except EmailTaken:
        db.session.rollback()
        raise
    audit.record("invitation.accepted", actor=user, subject=user, now=now, detail={"invitation_id": invitation.id})
    db.session.commit()
    return user
