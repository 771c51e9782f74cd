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


# How many users, in email order, a PostgreSQL search reads first (see _people_matching).
FIRST_LOOK = 2000


def find_users(q: str, limit: int = 50) -> list[tuple[User, str | None, str | None]]:
    """Users whose name, email or practice name contains `q`: (user, practice name, MFA method),
    the first `limit` by email.

    Shaped for a million users: the two ways a user can match are found separately, each at
    most `limit` rows in email order, so neither a rare nor a common term reads every user. A
    name or email match uses the trigram indexes on PostgreSQL (migration 0015; ILIKE there,
    lower() LIKE on SQLite); a practice-name match reads the few practices, then their users
    through (practice_id, email). The page joins practice and method on those rows only.
    """
    pattern = like_pattern(q)
    practices = select(Practice.id).where(Practice.name.ilike(pattern, escape="\\"))
    if db.session.get_bind().dialect.name == "postgresql":
        by_person = select(User.id).where(User.id.in_(_people_matching(pattern, limit)))
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
        people = (select(User.id).where(_person_matches(pattern, User.email, User.display_name))
                  .order_by(User.email).limit(limit).subquery())
        by_person = select(people.c.id)
        by_practice = (
            select(User.id, User.email).where(User.practice_id.in_(practices))
            .order_by(User.email).limit(limit).subquery()
        )
    matches = union(by_person, select(by_practice.c.id)).subquery()
    return db.session.execute(
        select(User, Practice.name, MfaEnrollment.method)
        .join(matches, matches.c.id == User.id)
        .outerjoin(Practice, Practice.id == User.practice_id)
        .outerjoin(MfaEnrollment, MfaEnrollment.user_id == User.id)
        .order_by(User.email)
        .limit(limit)
    ).all()


def _person_matches(pattern: str, email, name):
    return or_(email.like(pattern, escape="\\"), name.ilike(pattern, escape="\\"))


def _people_matching(pattern: str, limit: int) -> list[int]:
    """The first `limit` users by email whose name or email matches (PostgreSQL), in at most
    two statements, neither of which reads every user.

    Asked in one statement ("matches, by email, the first 50"), PostgreSQL has two plans: walk
    the email index until 50 match, or collect the matches from the trigram indexes and sort
    them. It prices the trigram indexes by their common trigrams' long lists and, at a million
    users, walked the index for a rare email, reading 430,000 users before the matches (which
    sit together in email order): 570 ms. So the walk is bounded: the first FIRST_LOOK users by
    email answer a term that matches many (all of its first `limit` are among them); only if
    fewer match there are the trigram indexes asked, in a subquery the walk cannot reach (an
    OFFSET keeps PostgreSQL from pushing the LIMIT and the order into it)."""
    first_users = select(User.id, User.email, User.display_name).order_by(User.email).limit(FIRST_LOOK).subquery()
    first = db.session.scalars(
        select(first_users.c.id)
        .where(_person_matches(pattern, first_users.c.email, first_users.c.display_name))
        .order_by(first_users.c.email).limit(limit)
    ).all()
    if len(first) == limit:
        return first
    every = select(User.id, User.email).where(_person_matches(pattern, User.email, User.display_name)).offset(0)
    every = every.subquery()
    return db.session.scalars(select(every.c.id).order_by(every.c.email).limit(limit)).all()


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
