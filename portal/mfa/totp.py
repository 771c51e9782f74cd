"""Authenticator apps: RFC 6238 TOTP (SHA-1, 6 digits, 30-second steps, T0 = 0)."""

from __future__ import annotations

import base64
import hmac
import secrets
from datetime import datetime
from io import BytesIO

import pyotp
import qrcode
import qrcode.image.svg
from flask import current_app

STEP_SECONDS = 30
DIGITS = 6
WINDOW = 1  # accept the current step and one either side, for clock drift


def new_secret() -> str:
    """A 160-bit secret from the OS CSPRNG, base32 without padding (as apps expect)."""
    return base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")


def provisioning_uri(secret: str, email: str) -> str:
    """otpauth://totp/Issuer:email?secret=...&issuer=Issuer, nothing about the patient or practice."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=email, issuer_name=current_app.config["MFA_ISSUER"]
    )


def qr_svg(uri: str) -> str:
    """The QR code as inline SVG, drawn here: the secret never leaves our origin."""
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=2)
    out = BytesIO()
    image.save(out)
    svg = out.getvalue().decode()
    if svg.startswith("<?xml"):
        svg = svg[svg.index("?>") + 2:].lstrip()
    return svg.replace("<svg ", '<svg role="img" aria-label="QR code for your authenticator app" class="qr" ', 1)


def grouped(secret: str) -> str:
    """ABCD EFGH ...: the manual key in groups of four for reading aloud or typing."""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def step_at(now: datetime) -> int:
    return int(now.timestamp()) // STEP_SECONDS


def matching_step(secret: str, code: str, now: datetime, last_step: int | None) -> int | None:
    """Return the time step `code` belongs to, within +-1 step of the server clock and after
    `last_step`; None if it matches no such step. Uses constant-time comparison.
    """
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = step_at(now)
    found = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        candidate = totp.generate_otp(step)
        if hmac.compare_digest(candidate, code) and (last_step is None or step > last_step):
            found = step
    return found
