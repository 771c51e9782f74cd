"""Plain factory functions for test data."""

from __future__ import annotations

import itertools

from portal import clock
from portal.accounts import passwords
from portal.extensions import db
from portal.models import Practice, User

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
        email_verified_at=clock.now() if verified else None,
    )
    db.session.add(user)
    db.session.commit()
    return user


def make_enrollment(user: User, method: str, *, phone: str = "+12025550143", secret: str | None = None):
    """Give `user` an active MFA method directly. Returns the plain TOTP secret for "totp"."""
    from portal.mfa import crypto, totp
    from portal.models import MfaEnrollment

    plain = None
    enrollment = MfaEnrollment(user_id=user.id, method=method, enrolled_at=clock.now())
    if method == "sms":
        enrollment.phone_e164 = phone
    elif method == "totp":
        plain = secret or totp.new_secret()
        enrollment.totp_secret = crypto.encrypt(plain)
    db.session.add(enrollment)
    db.session.commit()
    return plain
