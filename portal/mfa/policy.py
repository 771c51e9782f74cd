"""Who must use MFA and which methods they may choose."""

from __future__ import annotations

from portal.models import User
from portal.models.mfa import METHODS


def must_enroll(user: User) -> bool:
    """True when the user has no method but their practice requires one (or they are support)."""
    return user.mfa is None and is_required(user)


def is_required(user: User) -> bool:
    if user.role == "support":
        return True
    return bool(user.practice and user.practice.mfa_required)


def allowed_methods(user: User) -> tuple[str, ...]:
    """Support staff use Authenticator Apps only, the strongest of the three."""
    if user.role == "support":
        return ("totp",)
    return METHODS
