"""Who must use MFA and which methods they may choose."""

from __future__ import annotations

from datetime import datetime

from portal import clock
from portal.mfa import methods
from portal.models import User


def must_enroll(user: User) -> bool:
    """True when the user has no method but their practice requires one (or they are support)."""
    return user.mfa is None and is_required(user)


def is_required(user: User) -> bool:
    """True when MFA is required of the user now (support: always; others: their practice's
    requirement, once its start date has come)."""
    if user.role == "support":
        return True
    return bool(user.practice and user.practice.requires_mfa_at(clock.now()))


def requirement_starts(user: User) -> datetime | None:
    """For a user without MFA whose practice will require it: from when (else None)."""
    if user.mfa is not None or user.practice is None:
        return None
    return user.practice.requirement_starts(clock.now())


def allowed_methods(user: User) -> tuple[methods.Method, ...]:
    """Support staff use Authenticator Apps only, the strongest of the three."""
    if user.role == "support":
        return tuple(method for method in methods.ALL if method.for_support)
    return methods.ALL
