"""Errors raised by the account services. `str(error)` is a message fit to show the user;
`status` is the HTTP status a view answers with."""

from __future__ import annotations

from datetime import timedelta

from portal import wording
from portal.retry import RetryLater


class AccountError(Exception):
    status = 400
    default = "Something is wrong with that request."

    def __init__(self, message: str | None = None):
        super().__init__(message or self.default)


class InvalidToken(AccountError):
    default = "This link is not valid. Ask for a new one."


class TokenExpired(AccountError):
    default = "This link has expired. Ask for a new one."


class TokenUsed(AccountError):
    default = "This link has already been used. Ask for a new one if you still need it."


class EmailTaken(AccountError):
    default = "A user with this email address already exists."


class InvalidEmail(AccountError):
    default = "Enter a valid email address."


class WeakPassword(AccountError):
    pass


class UnknownPractice(AccountError):
    status = 404

    def __init__(self, name):
        super().__init__(f"No practice named {name!r}.")


class WrongPassword(AccountError):
    status = 401
    default = "That password is not correct."


class PasswordLocked(RetryLater, AccountError):
    """Too many wrong passwords: even the right one is refused until the lock ends."""

    def __init__(self, retry_after: timedelta):
        super().__init__(retry_after, f"Too many incorrect passwords. For your security, try again in "
                                      f"{wording.wait_in_minutes(retry_after)}.")


class InvitationNotFound(AccountError):
    """No such invitation in the admin's own practice (another practice's look the same)."""

    status = 404
    default = "There is no such invitation in your practice."


class InvitationClosed(AccountError):
    """The invitation was accepted, revoked, replaced or has expired: nothing more to do with it."""

    status = 409
    default = "This invitation is no longer open."
