"""Outgoing messages. Routes and services call `send_email`; configuration picks the transport.

Transports: "smtp" (Flask-Mail) and "outbox" (stored in the database for development and
tests). SMS: "twilio" sends; "outbox" stores.
"""

from __future__ import annotations

from flask import current_app, render_template

from portal.delivery.base import DeliveryError, EmailMessage
from portal.delivery import email as smtp_transport
from portal.delivery import outbox
from portal.delivery import sms as sms_transport

__all__ = ["DeliveryError", "EmailMessage", "send_email", "send_sms"]


def render_email(to: str, subject: str, template: str, **context) -> EmailMessage:
    """Render `templates/email/<template>.txt` and `.html` into a message."""
    context.setdefault("portal_name", current_app.config["PORTAL_NAME"])
    return EmailMessage(
        to=to,
        subject=subject,
        text=render_template(f"email/{template}.txt", **context),
        html=render_template(f"email/{template}.html", **context),
    )


def send_email(to: str, subject: str, template: str, **context) -> None:
    """Render and send an email. Raises DeliveryError when the transport fails."""
    message = render_email(to, subject, template, **context)
    transport = current_app.config["MAIL_TRANSPORT"]
    if transport == "outbox":
        outbox.store_email(message)
    elif transport == "smtp":
        smtp_transport.send(message)
    else:
        raise RuntimeError(f"Unknown MAIL_TRANSPORT {transport!r}")


def send_sms(to: str, body: str) -> None:
    """Send a text message to an E.164 number. Raises DeliveryError."""
    transport = current_app.config["SMS_TRANSPORT"]
    if transport == "outbox":
        outbox.store_sms(to, body)
    elif transport == "twilio":
        sms_transport.send(to, body)
    else:
        raise RuntimeError(f"Unknown SMS_TRANSPORT {transport!r}")
