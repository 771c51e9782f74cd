"""Plain factory functions for test data."""

from __future__ import annotations

import itertools

from portal.accounts import passwords
from portal.extensions import db
from portal.models import Practice, User
from portal.models.base import utcnow

PASSWORD = "correct horse battery staple"
_counter = itertools.count(1)


def make_practice(name: str | None = None, *, mfa_required: bool = False) -> Practice:
    practice = Practice(name=name or f"Practice {next(_counter)}", mfa_required=mfa_required)
    db.session.add(practice)
    db.session.commit()
    return practice


def make_user(
    email: str | None = None,
    *,
    role: str = "clinician",
    practice: Practice | None = None,
    password: str = PASSWORD,
    display_name: str | None = None,
    active: bool = True,
    verified: bool = True,
) -> User:
    if role != "support" and practice is None:
        practice = make_practice()
    n = next(_counter)
    user = User(
        email=(email or f"user{n}@example.test").lower(),
        display_name=display_name or f"User {n}",
        role=role,
        practice=practice if role != "support" else None,
        password_hash=passwords.hash_password(password),
        active=active,
        email_verified_at=utcnow() if verified else None,
    )
    db.session.add(user)
    db.session.commit()
    return user
