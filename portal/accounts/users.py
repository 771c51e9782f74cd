"""Users: email normalisation, creation and password authentication."""

from __future__ import annotations

import unicodedata
from datetime import datetime

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload

from portal.accounts import lockout, passwords
from portal.accounts.errors import EmailTaken, InvalidEmail, UnknownPractice
from portal.extensions import db
from portal.models import Practice, User
from portal.models.user import PRACTICE_ROLES, ROLES


def normalise_email(raw: str) -> str:
    """Return the canonical form of an email address (trimmed, lower case).

    Raises InvalidEmail. Does not check that the domain receives mail.
    """
    try:
        checked = validate_email(
            (raw or "").strip(),
            check_deliverability=False,
            test_environment=current_app.config["EMAIL_ALLOW_TEST_DOMAIN"],
        )
    except EmailNotValidError as error:
        raise InvalidEmail() from error
    return checked.normalized.lower()


def canonical_email(raw: str) -> str:
    """The form every spelling of an address is counted under: the account lookup's own
    normalisation for a valid address; for anything else, trimmed, NFC and lower case."""
    try:
        return normalise_email(raw)
    except InvalidEmail:
        return unicodedata.normalize("NFC", (raw or "").strip()).lower()


# Log In runs it on every attempt: built once, with the user's method and practice (what decides
# the next step: the code page, Choose MFA Device or the dashboard) in the same statement.
_BY_EMAIL = select(User).options(joinedload(User.mfa), joinedload(User.practice)).where(
    User.email == bindparam("email"))


def find_by_email(email: str) -> User | None:
    try:
        email = normalise_email(email)
    except InvalidEmail:
        return None
    return db.session.scalar(_BY_EMAIL, {"email": email})


def authenticate(email: str, password: str, *, now: datetime) -> User | None:
    """Return the user for a correct email and password, else None.

    Unknown, inactive, locked and wrong-password cases all cost one argon2 verification and
    all return None, so neither the answer nor its timing tells them apart. A wrong password
    counts toward the account lock; while locked even the right password is refused.
    Rehashes the stored password when the configured parameters have changed.
    """
    user = find_by_email(email)
    if user is None:
        passwords.verify_password(None, password)
        return None
    correct = passwords.verify_password(user.password_hash, password)
    if lockout.locked_until(user, lockout.PASSWORD, now) is not None:
        return None
    if not correct:
        if user.active:
            lockout.count_failure(user, lockout.PASSWORD, now)
        return None
    if not user.active:
        return None
    lockout.reset(user, lockout.PASSWORD)
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    if db.session.dirty:
        db.session.commit()
    return user


def create_user(
    *,
    email: str,
    display_name: str,
    role: str,
    practice: Practice | None,
    password: str | None = None,
    email_verified_at: datetime | None = None,
) -> User:
    """Add a user (not committed). Raises EmailTaken, InvalidEmail, WeakPassword, ValueError."""
    if role not in ROLES:
        raise ValueError(f"Unknown role {role!r}")
    if (role == "support") != (practice is None):
        raise ValueError("Support users belong to no practice; every other role needs one")
    email = normalise_email(email)
    if db.session.scalar(select(User.id).where(User.email == email)) is not None:
        raise EmailTaken()
    password_hash = None
    if password is not None:
        passwords.check_policy(password)
        password_hash = passwords.hash_password(password)
    user = User(
        email=email,
        display_name=display_name.strip(),
        role=role,
        practice=practice,
        password_hash=password_hash,
        email_verified_at=email_verified_at,
    )
    db.session.add(user)
    return user


def get_practice(name: str) -> Practice:
    practice = db.session.scalar(select(Practice).where(Practice.name == name))
    if practice is None:
        raise UnknownPractice(name)
    return practice


def end_all_sessions(user: User) -> None:
    """Invalidate every session of the user by bumping the session version (not committed)."""
    user.session_version = (user.session_version or 0) + 1


__all__ = [
    "PRACTICE_ROLES",
    "InvalidEmail",
    "authenticate",
    "create_user",
    "end_all_sessions",
    "find_by_email",
    "get_practice",
    "normalise_email",
]
