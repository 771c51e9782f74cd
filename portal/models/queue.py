"""What the task queue keeps in the database: notices already sent, tasks waiting for the queue
to come back, and tasks that failed for good."""

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.models.base import UTCDateTime, clock_now


class SentNotice(db.Model):
    """One notice, claimed before it is sent: its key makes a notice go out once even if its
    task runs twice or on two consumers at once."""

    __tablename__ = "sent_notices"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock_now, index=True)


class DeferredTask(db.Model):
    """A task whose change already stands but which the queue could not take (an outage);
    re-enqueued when the queue answers again."""

    __tablename__ = "deferred_tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    arguments: Mapped[str] = mapped_column(Text)  # JSON: {"args": [...], "kwargs": {...}}
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock_now, index=True)


class FailedTask(db.Model):
    """A task that failed after its last retry: logged, counted and kept here, never lost silently."""

    __tablename__ = "failed_tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    arguments: Mapped[str] = mapped_column(Text)
    error: Mapped[str] = mapped_column(String(200))  # the exception class, never its message
    failed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock_now, index=True)
