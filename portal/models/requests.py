from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.models.base import UTCDateTime, clock_now

REQUEST_STATUSES = ("pending", "approved", "declined")


class RequirementRequest(db.Model):
    """A practice admin asks support to require MFA for the practice (or to stop requiring it)."""

    __tablename__ = "requirement_requests"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'approved', 'declined')", name="status_allowed"),
        Index("ix_requirement_requests_status_id", "status", "id"),
        Index("ix_requirement_requests_practice_id_id", "practice_id", "id"),
        # At most one open request per practice, even when two arrive at the same moment.
        Index("uq_requirement_requests_one_open", "practice_id", unique=True,
              postgresql_where=text("status = 'pending'"), sqlite_where=text("status = 'pending'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    practice_id: Mapped[int] = mapped_column(ForeignKey("practices.id"))
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    require: Mapped[bool] = mapped_column()  # the state asked for
    required_from: Mapped[datetime | None] = mapped_column(UTCDateTime())  # asked-for start (None: now)
    note: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(10), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock_now)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decision_note: Mapped[str | None] = mapped_column(Text)

    practice = relationship("Practice")
    requested_by = relationship("User", foreign_keys=[requested_by_id])
    decided_by = relationship("User", foreign_keys=[decided_by_id])


class LostAccessRequest(db.Model):
    """A user who cannot use their MFA method (a lost phone) asks support to clear it."""

    __tablename__ = "lost_access_requests"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'cleared', 'declined')", name="status_allowed"),
        Index("ix_lost_access_requests_status_id", "status", "id"),
        Index("uq_lost_access_requests_one_open", "user_id", unique=True,
              postgresql_where=text("status = 'open'"), sqlite_where=text("status = 'open'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(10), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock_now)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decision_note: Mapped[str | None] = mapped_column(Text)

    user = relationship("User", foreign_keys=[user_id])
    decided_by = relationship("User", foreign_keys=[decided_by_id])
