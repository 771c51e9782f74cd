from datetime import datetime

from sqlalchemy import ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.models.base import UTCDateTime, clock_now


class Practice(db.Model):
    __tablename__ = "practices"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # MFA is required for all users (all or nothing) from `mfa_required_from` on (None: at once);
    # until then users without MFA are reminded, not forced.
    mfa_required: Mapped[bool] = mapped_column(default=False, server_default=false())
    mfa_required_from: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock_now)

    users: Mapped[list["User"]] = relationship(back_populates="practice")  # noqa: F821

    def requires_mfa_at(self, now: datetime) -> bool:
        """True when the requirement is in force at `now`."""
        return self.mfa_required and (self.mfa_required_from is None or self.mfa_required_from <= now)

    def requirement_starts(self, now: datetime) -> datetime | None:
        """The future moment the requirement comes into force (None: in force, or not required)."""
        if self.mfa_required and self.mfa_required_from is not None and self.mfa_required_from > now:
            return self.mfa_required_from
        return None

    def __repr__(self) -> str:
        return f"<Practice {self.id} {self.name!r}>"


class PracticeMfaCount(db.Model):
    """How many of a practice's users are active or not, by MFA method ("none" for users without).

    Kept by database triggers on users, MFA enrollments and practices (migration 0008), in the
    same transaction as the change, so the review page reads a practice's coverage from a few
    rows instead of counting every user. Never written by the application.
    """

    __tablename__ = "practice_mfa_counts"

    practice_id: Mapped[int] = mapped_column(ForeignKey("practices.id", ondelete="CASCADE"), primary_key=True)
    active: Mapped[bool] = mapped_column(primary_key=True)
    method: Mapped[str] = mapped_column(String(10), primary_key=True)
    users: Mapped[int] = mapped_column(default=0, server_default="0")
