"""Who must use MFA and which methods they may choose."""

from __future__ import annotations

from portal.mfa import methods
from portal.models import User


def must_enroll(user: User) -> bool:
    """True when the user has no method but their practice requires one (or they are support)."""
    return user.mfa is None and is_required(user)


def is_required(user: User) -> bool:
    if user.role == "support":
        return True
    return bool(user.practice and user.practice.mfa_required)


def allowed_methods(user: User) -> tuple[methods.Method, ...]:
    """Support staff use Authenticator Apps only, the strongest of the three."""
    if user.role == "support":
        return tuple(method for method in methods.ALL if method.for_support)
    return methods.ALL
