"""What the portal sends about MFA: codes and notices. No PHI, no links in code messages."""

from __future__ import annotations

from flask import current_app

from portal.delivery import DeliveryError, send_email, send_sms
from portal.mfa.errors import DeliveryFailed
from portal.mfa.masking import mask_destination
from portal.models import User
from portal.models.mfa import METHOD_LABELS

CODE_SUBJECT = "Your verification code"


def _minutes() -> int:
    return int(current_app.config["MFA_CODE_TTL"].total_seconds() // 60)


def sms_code_text(code: str) -> str:
    name = current_app.config["PORTAL_NAME"]
    return f"{name}: your verification code is {code}. It expires in {_minutes()} minutes. Never share this code."


def send_code(channel: str, destination: str, code: str) -> None:
    """Send a code by SMS or email. Raises DeliveryFailed (the code is not logged)."""
    try:
        if channel == "sms":
            send_sms(destination, sms_code_text(code))
        else:
            send_email(destination, CODE_SUBJECT, "mfa_code", code=code, minutes=_minutes())
    except DeliveryError as error:
        raise DeliveryFailed() from error


def notify_change(user: User, event: str, *, method: str | None = None, old_method: str | None = None,
                  old_destination: str | None = None, old_phone: str | None = None) -> None:
    """Email the user that their MFA was enabled, switched or cleared; on a switch away from
    SMS, also text the old number, so a hijacked switch reaches the phone that lost out.

    A failed notice is logged and does not undo the change the user just made.
    """
    subjects = {
        "enabled": "Multi-factor authentication is on",
        "switched": "Your multi-factor authentication method changed",
        "cleared": "Your multi-factor authentication was cleared",
    }
    context = dict(
        user=user,
        event=event,
        method_label=METHOD_LABELS.get(method or "", ""),
        destination=mask_destination(method, email=user.email, phone_e164=user.mfa.phone_e164 if user.mfa else None) if method else None,
        old_method_label=METHOD_LABELS.get(old_method or "", ""),
        old_destination=old_destination,
        required=bool(user.practice and user.practice.mfa_required) or user.role == "support",
    )
    try:
        send_email(user.email, subjects[event], "mfa_notice", **context)
    except DeliveryError:
        current_app.logger.warning("MFA %s notice could not be emailed to user %s", event, user.id)
    if old_phone and event in ("switched", "cleared"):
        name = current_app.config["PORTAL_NAME"]
        try:
            send_sms(old_phone, f"{name}: this number no longer receives your sign-in codes. "
                                "If you did not make this change, contact support.")
        except DeliveryError:
            current_app.logger.warning("MFA %s notice could not be texted to user %s", event, user.id)
