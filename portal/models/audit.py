from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.models.base import UTCDateTime, clock_now


class AuditChainLock(db.Model):
    """One row that every audit writer updates first: its row lock, held to commit, makes
    writers take turns on PostgreSQL and SQLite alike, so each new event links to the last."""

    __tablename__ = "audit_chain_lock"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    writes: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)


class AuditEvent(db.Model):
    """One security event. Append-only and hash-chained: see `portal.audit`.

    Actor, subject and practice are plain ids, not foreign keys, so the trail never changes
    when the rows it mentions do.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_practice_id_id", "practice_id", "id"),
        Index("ix_audit_events_subject_id_id", "subject_id", "id"),
        Index("ix_audit_events_actor_id_id", "actor_id", "id"),
        Index("ix_audit_events_event_type_id", "event_type", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock_now, index=True)
    event_type: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(10))
    actor_id: Mapped[int | None] = mapped_column(Integer)
    subject_id: Mapped[int | None] = mapped_column(Integer)
    practice_id: Mapped[int | None] = mapped_column(Integer)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    request_id: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="{}")
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))
