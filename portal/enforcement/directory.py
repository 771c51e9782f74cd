"""What the support area looks up: practices with their coverage, users by email or practice."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, select, true, union

from portal.enforcement.review import like_pattern
from portal.extensions import db
from portal.mfa import methods
from portal.models import MfaEnrollment, Practice, User


def practices_overview() -> list[tuple[Practice, int, int]]:
    """Every practice with its active users and how many of them have MFA (one query)."""
    return db.session.execute(
        select(Practice, func.count(User.id), func.count(MfaEnrollment.id))
        .outerjoin(User, (User.practice_id == Practice.id) & User.active.is_(True))
        .outerjoin(MfaEnrollment, MfaEnrollment.user_id == User.id)
        .group_by(Practice.id)
        .order_by(Practice.name)
    ).all()


def find_users(q: str, limit: int = 50) -> list[tuple[User, str | None, str | None]]:
    """Users whose name, email or practice name contains `q`: (user, practice name, MFA method),
    the first `limit` by email.

    Shaped for a million users: the two ways a user can match are separate branches, each
    taking at most `limit` rows in email order, so neither a rare nor a common term reads every
    user. A name or email match uses the trigram indexes on PostgreSQL (migration 0015; ILIKE
    there, lower() LIKE on SQLite); a practice-name match reads the few practices, then their
    users through (practice_id, email). The page joins practice and method on those rows only.
    """
    pattern = like_pattern(q)
    by_person = (
        select(User.id, User.email)
        .where(or_(User.email.like(pattern, escape="\\"), User.display_name.ilike(pattern, escape="\\")))
        .order_by(User.email).limit(limit).subquery()
    )
    practices = select(Practice.id).where(Practice.name.ilike(pattern, escape="\\"))
    if db.session.get_bind().dialect.name == "postgresql":
        # Driven by the matching practices: each one's first `limit` users by email, from
        # (practice_id, email). Written as "users of these practices by email", PostgreSQL walks
        # the whole email index in order hoping to meet one soon, and reads every user when no
        # practice matches (300 ms at 300,000 users). SQLite has no LATERAL; it is not run at
        # that size.
        matched = practices.subquery()
        first = (select(User.id, User.email).where(User.practice_id == matched.c.id)
                 .order_by(User.email).limit(limit).lateral())
        by_practice = (select(first.c.id, first.c.email).select_from(matched).join(first, true())
                       .order_by(first.c.email).limit(limit).subquery())
    else:
        by_practice = (
            select(User.id, User.email).where(User.practice_id.in_(practices))
            .order_by(User.email).limit(limit).subquery()
        )
    matches = union(select(by_person.c.id), select(by_practice.c.id)).subquery()
    return db.session.execute(
        select(User, Practice.name, MfaEnrollment.method)
        .join(matches, matches.c.id == User.id)
        .outerjoin(Practice, Practice.id == User.practice_id)
        .outerjoin(MfaEnrollment, MfaEnrollment.user_id == User.id)
        .order_by(User.email)
        .limit(limit)
    ).all()


def mfa_state(user: User, now: datetime) -> dict:
    """A user's MFA state as support sees it: never a secret, a code or a full phone number."""
    method = methods.of(user.mfa)
    destination = method.masked_destination(user, user.mfa) if method else None
    return dict(
        method=method.label if method else None,
        described=method.described(destination) if method else None,
        destination=destination,
        enrolled_at=user.mfa.enrolled_at if method else None,
        last_mfa_at=user.last_mfa_at,
        failed=user.mfa_failed_count,
        locked_until=user.mfa_locked_until if user.mfa_locked_until and user.mfa_locked_until > now else None,
        password_locked_until=user.password_locked_until
        if user.password_locked_until and user.password_locked_until > now else None,
    )
