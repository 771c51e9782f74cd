"""Errors of Symantec VIP Access: what the VIP service answered, and what a person is told.

`ServiceError` and its kinds describe the service's answer (no one sees them); the MfaError
kinds below carry a message fit to show and the HTTP status a view answers with.
"""

from __future__ import annotations

from portal.mfa.errors import InvalidCode, MfaError


class ServiceError(Exception):
    """The VIP service did not do what was asked. `code` is VIP's status code, if it answered."""

    status = 503

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code


class ServiceUnavailable(ServiceError):
    """No usable answer: a timeout, a refused connection or TLS handshake, an HTTP error, a SOAP
    fault, a body that is not the expected response, or VIP's own "internal error"."""


class ServiceRefused(ServiceError):
    """VIP answered with a status other than success (wrong code, unknown credential ...)."""

    status = 400


class MalformedCredentialId(MfaError):
    default = ("Enter the Credential ID shown in VIP Access: four letters and eight digits, "
               "for example VSST12345678.")


class UnknownCredentialId(MfaError):
    default = ("Symantec VIP Access does not know that Credential ID. Check it against the Credential ID "
               "shown in the app and enter it again.")


class SecurityCodesRejected(InvalidCode):
    default = ("Those security codes were not accepted. Enter the code VIP Access shows now, wait for the "
               "next one, and enter that as the second security code.")


class SameSecurityCodes(MfaError):
    default = ("The two security codes are the same. Wait for VIP Access to show the next code and enter it "
               "as the second security code.")


class VipUnavailable(MfaError):
    """The VIP service could not be reached or gave no usable answer; nothing changed here."""

    status = 503
    default = ("Symantec VIP Access could not be reached just now, so nothing was saved. "
               "Please try again in a moment.")


class VipCodeNotChecked(VipUnavailable):
    """At Log In: the code could not be checked (there is no way around it)."""

    default = ("We could not check your code with Symantec VIP Access just now. Please wait a moment, then "
               "enter the code the app shows.")


class CredentialNotBound(MfaError):
    """At Log In: VIP no longer has the user's credential (removed at VIP's side)."""

    status = 409
    default = ("Symantec VIP Access no longer knows your credential, so its codes cannot be checked. "
               "Use \u201cCan't use this method?\u201d to ask support to clear MFA.")
