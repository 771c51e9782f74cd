"""Domain errors of the MFA services. `str(error)` is a message fit to show the user;
`status` is the HTTP status a view answers with. Lifetimes in messages come from configuration."""

from __future__ import annotations

import math
from datetime import timedelta

from flask import current_app

from portal import wording
from portal.retry import RetryLater


class MfaError(Exception):
    status = 400
    default = "Something is wrong with that request."

    def __init__(self, message: str | None = None):
        super().__init__(message or self.default_message())

    def default_message(self) -> str:
        return self.default


class MalformedCode(MfaError):
    default = "Enter the 6-digit code: six digits, 0 to 9."


class InvalidCode(MfaError):
    default = "That code is not correct. Check it and try again."


class CodeExpired(MfaError):
    def default_message(self) -> str:
        lifetime = wording.minutes_in_words(current_app.config["MFA_CODE_TTL"])
        return f"That code has expired: codes are valid for {lifetime}. Use the click here link to get a new one."


class CodeUsedUp(MfaError):
    default = "That code was tried too many times and no longer works. Use the click here link to get a new one."


class NoActiveCode(MfaError):
    default = "There is no code waiting for you. Use the click here link to get a new one."


class AccountLocked(RetryLater, MfaError):
    def __init__(self, retry_after: timedelta):
        super().__init__(retry_after, f"Too many incorrect codes. For your security, codes are not accepted for "
                                      f"{wording.wait_in_minutes(retry_after)}. Try again later or contact support.")


class SendThrottled(RetryLater, MfaError):
    def __init__(self, retry_after: timedelta, reason: str = "cooldown"):
        if reason == "cooldown":
            seconds = max(1, math.ceil(retry_after.total_seconds()))
            message = f"A code was just sent. You can ask for a new one in {seconds} seconds."
        else:
            message = f"Too many codes were sent. You can ask for a new one in {wording.wait_in_minutes(retry_after)}."
        super().__init__(retry_after, message)
        self.reason = reason  # "cooldown" or "volume": counted in the metrics


class DeliveryFailed(MfaError):
    status = 503
    default = "We could not send your code just now. Please try again in a moment (click here to resend)."


class SetupCodeNotSent(DeliveryFailed):
    """At SMS set-up the first code could not be sent: the number was not saved."""

    default = ("We could not send a code to that number just now, so it was not saved. Check the number and "
               "enter it again in a moment.")


class NumberNotSaved(MfaError):
    """A resend at SMS set-up after the first code could not be sent: there is no number to resend to."""

    status = 409
    default = ("Your code could not be sent, so your number was not saved and there is nothing to resend. "
               "Enter your mobile number again.")


class InvalidPhoneNumber(MfaError):
    default = "Enter a US mobile number with area code, such as (555) 555-1234."


class MethodNotAllowed(MfaError):
    status = 403
    default = "That method is not available for your account."


class EmailNotVerified(MfaError):
    default = (
        "Email is not available because your login email address has not been verified. "
        "Accept your invitation email (or ask your practice admin to resend it) to verify it."
    )


class EnrollmentExpired(MfaError):
    def default_message(self) -> str:
        lifetime = wording.minutes(current_app.config["MFA_ENROLLMENT_TTL"])
        return f"Setting up took longer than {lifetime} minutes, so it was cancelled. Choose your MFA device again."


class UnknownMethod(MfaError):
    """A request named no method of the registry."""


class CannotClear(MfaError):
    """Support cannot clear this user's MFA (own account, nothing to clear, reason or ticket missing)."""

