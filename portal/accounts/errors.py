"""Errors raised by the account services. `str(error)` is a message fit to show the user;
`status` is the HTTP status a view answers with."""

from __future__ import annotations

import math
from datetime import timedelta


class AccountError(Exception):
    status = 400


class InvalidToken(AccountError):
    def __init__(self, message="This link is not valid. Ask for a new one."):
        super().__init__(message)


class TokenExpired(AccountError):
    def __init__(self, message="This link has expired. Ask for a new one."):
        super().__init__(message)


class TokenUsed(AccountError):
    def __init__(self, message="This link has already been used. Ask for a new one if you still need it."):
        super().__init__(message)


class EmailTaken(AccountError):
    def __init__(self, message="A user with this email address already exists."):
        super().__init__(message)


class InvalidEmail(AccountError):
    def __init__(self, message="Enter a valid email address."):
        super().__init__(message)


class WeakPassword(AccountError):
    pass


class UnknownPractice(AccountError):
    status = 404

    def __init__(self, name):
        super().__init__(f"No practice named {name!r}.")


class WrongPassword(AccountError):
    status = 401

    def __init__(self, message="That password is not correct."):
        super().__init__(message)


class PasswordLocked(AccountError):
    """Too many wrong passwords: even the right one is refused until the lock ends."""

    status = 429

    def __init__(self, retry_after: timedelta):
        self.retry_after = retry_after
        minutes = max(1, math.ceil(retry_after.total_seconds() / 60))
        super().__init__(f"Too many incorrect passwords. For your security, try again in {minutes} "
                         f"minute{'s' if minutes != 1 else ''}.")
