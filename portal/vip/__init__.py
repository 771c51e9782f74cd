"""Symantec VIP Access: credentials whose codes Symantec's VIP service checks.

A VIP Access credential is named by its Credential ID (four letters and eight digits, shown in
the app). The portal never holds its secret: it binds the credential to a VIP user (one per
portal user, `vip_user_id()`), proving possession with two consecutive codes, asks VIP to
authenticate a code at Log In, and removes the binding when the user switches away or support
clears MFA. The VIP User Services API is reached through `service()`: the `VipService`
interface, implemented by `client.SoapService` (SOAP over HTTPS with the account's client
certificate). VIP Access is offered only when VIP_API_BASE_URL is set; production refuses to
start with it set but without the client certificate and key (config.py).
"""

from __future__ import annotations

import re
from typing import Protocol

from flask import current_app

from portal.vip.errors import MalformedCredentialId

__all__ = ["VipService", "configured", "mask_credential_id", "normalise_credential_id", "service", "vip_user_id"]

_CREDENTIAL_ID = re.compile(r"[A-Z]{4}[0-9]{8}", re.ASCII)
_SEPARATORS = re.compile(r"[ \t\-]")


class VipService(Protocol):
    """What the portal asks of VIP. Each raises ServiceUnavailable (no usable answer) or
    ServiceRefused (VIP's status code in `.code`)."""

    def create_user(self, user_id: str) -> None:
        """Create the VIP user; one that exists already is fine (create or find)."""

    def add_credential(self, user_id: str, credential_id: str, otp1: str, otp2: str) -> None:
        """Bind the credential to the user; VIP checks the two consecutive codes."""

    def authenticate(self, user_id: str, otp: str) -> None:
        """Check a code from a credential bound to the user."""

    def remove_credential(self, user_id: str, credential_id: str) -> None:
        """Unbind the credential from the user."""


def configured() -> bool:
    """Is VIP Access offered here (VIP_API_BASE_URL set)?"""
    return bool(current_app.config.get("VIP_API_BASE_URL"))


_EXTENSION = "portal.vip"


def service() -> VipService:
    """The VIP service of this application (built once from its settings)."""
    from portal.vip.client import SoapService

    app = current_app._get_current_object()
    existing = app.extensions.get(_EXTENSION)
    if existing is None:
        existing = app.extensions[_EXTENSION] = SoapService.from_config(app.config)
    return existing


def vip_user_id(user_id: int) -> str:
    """The VIP user of a portal user: VIP_USER_ID_PREFIX and the portal's id, nothing personal."""
    return f"{current_app.config['VIP_USER_ID_PREFIX']}{user_id}"


def normalise_credential_id(raw: str | None) -> str:
    """VSST12345678 from what a person typed (spaces, dashes and lower case allowed).
    Raises MalformedCredentialId."""
    if not isinstance(raw, str) or len(raw) > 40:
        raise MalformedCredentialId()
    value = _SEPARATORS.sub("", raw).upper()
    if not _CREDENTIAL_ID.fullmatch(value):
        raise MalformedCredentialId()
    return value


def mask_credential_id(credential_id: str) -> str:
    """VSST••••5678: the prefix (which says the kind of app) and the last four digits, like a
    phone number; the rest is never shown or recorded."""
    return f"{credential_id[:4]}••••{credential_id[-4:]}"
