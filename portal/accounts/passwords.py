"""argon2id password hashing with parameters from configuration."""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

from portal.accounts.errors import WeakPassword

_DUMMY_PASSWORD = "not-a-real-password-used-for-timing"


def hasher() -> PasswordHasher:
    """Return the application's hasher, built once from ARGON2_* settings."""
    state = current_app.extensions.setdefault("portal.passwords", {})
    if "hasher" not in state:
        config = current_app.config
        state["hasher"] = PasswordHasher(
            time_cost=config["ARGON2_TIME_COST"],
            memory_cost=config["ARGON2_MEMORY_COST"],
            parallelism=config["ARGON2_PARALLELISM"],
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        state["dummy_hash"] = state["hasher"].hash(_DUMMY_PASSWORD)
    return state["hasher"]


def check_policy(password: str) -> None:
    """Raise WeakPassword unless the password meets NIST SP 800-63B length rules.

    No composition rules: length is what counts. Does not consult a breached-password list.
    """
    minimum = current_app.config["PASSWORD_MIN_LENGTH"]
    maximum = current_app.config["PASSWORD_MAX_LENGTH"]
    if len(password) < minimum:
        raise WeakPassword(f"Use at least {minimum} characters.")
    if len(password) > maximum:
        raise WeakPassword(f"Use at most {maximum} characters.")


def hash_password(password: str) -> str:
    return hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password in constant time; with no hash, spend the same work and fail."""
    ph = hasher()
    if not password_hash:
        _burn(password)
        return False
    try:
        return ph.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return hasher().check_needs_rehash(password_hash)


def _burn(password: str) -> None:
    """Spend one argon2 verification so unknown accounts cost as much as known ones."""
    ph = hasher()
    try:
        ph.verify(current_app.extensions["portal.passwords"]["dummy_hash"], password)
    except VerificationError:
        pass
