"""Email over SMTP through Flask-Mail, with a connection timeout so a dead server fails fast."""

from __future__ import annotations

import smtplib

from flask import current_app
from flask_mail import Connection, Message

from portal.delivery.errors import DeliveryError
from portal.delivery.message import EmailMessage
from portal.extensions import mail


class _TimeoutConnection(Connection):
    """Flask-Mail's connection, but with a socket timeout (Flask-Mail sets none)."""

    def configure_host(self):
        timeout = current_app.config["MAIL_TIMEOUT_SECONDS"]
        if self.mail.use_ssl:
            host = smtplib.SMTP_SSL(self.mail.server, self.mail.port, timeout=timeout)
        else:
            host = smtplib.SMTP(self.mail.server, self.mail.port, timeout=timeout)
        if self.mail.use_tls:
            host.starttls()
        if self.mail.username and self.mail.password:
            host.login(self.mail.username, self.mail.password)
        return host


def send(message: EmailMessage) -> None:
    """Send one message. Raises DeliveryError; the message body is never logged."""
    msg = Message(subject=message.subject, recipients=[message.to], body=message.text, html=message.html)
    try:
        with _TimeoutConnection(current_app.extensions["mail"]) as connection:
            msg.send(connection)
    except (TimeoutError, smtplib.SMTPException, OSError) as error:
        current_app.logger.warning("SMTP delivery failed: %s", type(error).__name__)
        raise DeliveryError("The email could not be sent.") from error


__all__ = ["mail", "send"]
