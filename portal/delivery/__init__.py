"""Outgoing messages: email and SMS, each through the transport configuration names.

Transports are resolved once, when the application starts (`init_app`), so a misspelt
MAIL_TRANSPORT or SMS_TRANSPORT stops the start-up instead of failing the first send.
Email: "smtp" (Flask-Mail) or "outbox" (stored for development and tests). SMS: "twilio"
or "outbox". Adding a transport is one entry in `TRANSPORTS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app, render_template

from portal.delivery import outbox, sms, smtp
from portal.delivery.errors import DeliveryError
from portal.delivery.message import EmailMessage

__all__ = ["CHANNELS", "Channel", "DeliveryError", "EmailMessage", "channel", "init_app", "send_email", "send_sms"]


@dataclass(frozen=True)
class Channel:
    """A way of reaching a person: its transport setting and how pages name it."""

    key: str
    noun: str  # "a code by {noun}"
    verb: str  # "we will {verb} you a code"
    past: str  # "the code we just {past} you"
    setting: str  # the configuration key that names its transport
    metered: bool  # each message costs money: daily caps per destination and overall apply


EMAIL = Channel("email", "email", "email", "emailed", "MAIL_TRANSPORT", metered=False)
SMS = Channel("sms", "text message", "text", "texted", "SMS_TRANSPORT", metered=True)
CHANNELS = {EMAIL.key: EMAIL, SMS.key: SMS}

# channel -> transport name -> the function that hands a message over (raises DeliveryError)
TRANSPORTS = {
    EMAIL.key: {"smtp": smtp.send, "outbox": outbox.store_email},
    SMS.key: {"twilio": sms.send, "outbox": outbox.store_sms},
}

_EXTENSION = "portal.delivery"


def channel(key: str) -> Channel:
    return CHANNELS[key]


def init_app(app: Flask) -> None:
    """Pick each channel's transport from configuration. Raises RuntimeError for an unknown name."""
    chosen = {}
    for key, transports in TRANSPORTS.items():
        name = app.config[CHANNELS[key].setting]
        if name not in transports:
            raise RuntimeError(f"{CHANNELS[key].setting} must be one of {', '.join(sorted(transports))}, not {name!r}")
        chosen[key] = transports[name]
    app.extensions[_EXTENSION] = chosen


def _transport(key: str):
    return current_app.extensions[_EXTENSION][key]


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
    _transport(EMAIL.key)(render_email(to, subject, template, **context))


def send_sms(to: str, body: str) -> None:
    """Send a text message to an E.164 number. Raises DeliveryError."""
    _transport(SMS.key)(to, body)
