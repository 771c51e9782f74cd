"""Errors raised by the account services; routes turn them into messages."""


class AccountError(Exception):
    """Base class; `str(error)` is a message fit to show the user."""


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


class WeakPassword(AccountError):
    pass


class UnknownPractice(AccountError):
    def __init__(self, name):
        super().__init__(f"No practice named {name!r}.")
