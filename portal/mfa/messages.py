"""What the portal sends about MFA: codes and notices. No PHI, no links in code messages."""

from __future__ import annotations

from datetime import datetime

from flask import current_app

from portal import audit, metrics
from portal.delivery import DeliveryError, send_email, send_sms
from portal.extensions import db
from portal.mfa import codes, methods, policy
from portal.mfa.errors import DeliveryFailed, MfaError
from portal.models import User
from portal.tasks import jobs
from portal.wording import minutes

CODE_SUBJECT = "Your verification code"


def _minutes() -> int:
    return minutes(current_app.config["MFA_CODE_TTL"])


def sms_code_text(code: str) -> str:
    name = current_app.config["PORTAL_NAME"]
    return f"{name}: your verification code is {code}. It expires in {_minutes()} minutes. Never share this code."


def _email_code(destination: str, code: str) -> None:
    send_email(destination, CODE_SUBJECT, "mfa_code", code=code, minutes=_minutes())


def _text_code(destination: str, code: str) -> None:
    send_sms(destination, sms_code_text(code))


# How a code is worded for each delivery channel.
_CODE_SENDERS = {"email": _email_code, "sms": _text_code}


def send_code(channel: str, destination: str, code: str) -> None:
    """Send a code by a channel ("sms", "email"). Raises DeliveryFailed (the code is not logged)."""
    try:
        _CODE_SENDERS[channel](destination, code)
    except DeliveryError as error:
        raise DeliveryFailed() from error


def deliver_code(user: User, method: methods.Method, details, *, purpose: str, challenge: str, now: datetime,
                 resend: bool = False, then=None) -> None:
    """Issue a code for `details` (the active method at Log In; at set-up, the method being
    set up), send it and audit it. Commits.

    Two short transactions around the provider call: the first decides the sending limits and
    reserves the code atomically (committed, so every parallel request sees it, and no lock is
    held while the message is in flight); after a successful send the second makes the code
    usable, voids the previous one of this purpose, runs `then` (e.g. saving the number being
    set up) and audits. On a failure nothing else changes: the reservation is withdrawn (no
    cooldown, nothing counted), the previous code still works, and the failure is audited.

    Raises AccountLocked, SendThrottled, DeliveryFailed.
    """
    destination = method.destination(user, details)
    try:
        record, code = codes.issue(user, purpose=purpose, channel=method.channel.key, destination=destination,
                                   challenge=challenge, now=now)
    except MfaError:
        db.session.rollback()
        raise
    db.session.commit()
    detail = {"channel": method.channel.key, "destination": method.masked_destination(user, details),
              "purpose": purpose}
    try:
        send_code(method.channel.key, destination, code)
    except DeliveryFailed:
        metrics.delivery_failed(method.channel.key)
        codes.withdraw(record)
        audit.record("mfa.code_send_failed", outcome="failure", subject=user, now=now, detail=detail, commit=True)
        raise
    codes.confirm_sent(user, record, now)
    if then is not None:
        then()
    audit.record("mfa.code_resent" if resend else "mfa.code_sent", subject=user, now=now, detail=detail)
    db.session.commit()
    metrics.code_sent(method.channel.key)


def notify_change(user: User, event: str, *, method: str | None = None, old_method: str | None = None,
                  old_destination: str | None = None, old_phone: str | None = None) -> None:
    """Queue the email telling the user their MFA was enabled, switched or cleared; on a switch
    away from SMS, also a text to the old number, so a hijacked switch reaches the phone that
    lost out. Called after the change is committed; the queue sends each notice once.
    """
    subjects = {
        "enabled": "Multi-factor authentication is on",
        "switched": "Your multi-factor authentication method changed",
        "cleared": "Your multi-factor authentication was cleared",
    }
    current = methods.find(method)
    jobs.notify(
        user.email, subjects[event], "mfa_notice",
        user=jobs.person(user),
        event=event,
        method_label=methods.label(method, ""),
        method_described=current.described(current.masked_destination(user, user.mfa)) if current else "",
        destination=current.masked_destination(user, user.mfa) if current else None,
        old_method_label=methods.label(old_method, ""),
        old_destination=old_destination,
        required=policy.is_required(user),
    )
    if old_phone and event in ("switched", "cleared"):
        name = current_app.config["PORTAL_NAME"]
        jobs.notify_by_text(old_phone, f"{name}: this number no longer receives your Log In codes. "
                                       "If you did not make this change, contact support.")
