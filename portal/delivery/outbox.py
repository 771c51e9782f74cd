"""The dev outbox: messages stored in the database instead of sent (DEV_OUTBOX only)."""

from __future__ import annotations

from sqlalchemy import select

from portal.delivery.message import EmailMessage
from portal.extensions import db
from portal.models import OutboxMessage


def store_email(message: EmailMessage) -> OutboxMessage:
    record = OutboxMessage(
        channel="email",
        recipient=message.to,
        subject=message.subject,
        body_text=message.text,
        body_html=message.html,
    )
    db.session.add(record)
    db.session.flush()  # committed with the caller's transaction
    return record


def store_sms(to: str, body: str) -> OutboxMessage:
    record = OutboxMessage(channel="sms", recipient=to, subject=None, body_text=body, body_html=None)
    db.session.add(record)
    db.session.flush()  # committed with the caller's transaction
    return record


def latest(limit: int = 100) -> list[OutboxMessage]:
    """Newest first."""
    query = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    return list(db.session.scalars(query))
