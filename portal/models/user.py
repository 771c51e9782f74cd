from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, SmallInteger, String, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.models.base import UTCDateTime, clock_now

ROLES = ("clinician", "staff", "practice_admin", "support")
PRACTICE_ROLES = ("clinician", "staff", "practice_admin")
ROLE_LABELS = {
    "clinician": "Clinician",
    "staff": "Staff",
    "practice_admin": "Practice admin",
    "support": "Support",
}


class User(UserMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "role IN ('clinician', 'staff', 'practice_admin', 'support')", name="role_allowed"
        ),
        # Support staff belong to no practice; everyone else belongs to exactly one.
        CheckConstraint(
            "(role = 'support' AND practice_id IS NULL) OR (role <> 'support' AND practice_id IS NOT NULL)",
            name="practice_matches_role",
        ),
        # Emails are stored normalised (trimmed, lower case), so uniqueness is case-insensitive.
        CheckConstraint("email = lower(email)", name="email_lower"),
        # The practice review sorts and pages a practice's users by these columns; with the id
        # in the index, a page far down the list is found from the index alone. Each serves its
        # sort ascending (PostgreSQL puts NULLs last); PostgreSQL also has, from migration 0016,
        # the name's lower(display_name) and each nullable column DESC NULLS LAST (see
        # REVIEW_INDEX_PREFIX in portal/models/base.py).
        Index("ix_users_practice_id_email", "practice_id", "email", "id"),
        Index("ix_users_practice_id_mfa_method_rank", "practice_id", "mfa_method_rank", "id"),
        Index("ix_users_practice_id_mfa_enrolled_at", "practice_id", "mfa_enrolled_at", "id"),
        Index("ix_users_practice_id_last_mfa_at", "practice_id", "last_mfa_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    password_hash: Mapped[str | None] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(20))
    practice_id: Mapped[int | None] = mapped_column(ForeignKey("practices.id"), index=True)
    active: Mapped[bool] = mapped_column(default=True, server_default=true())
    # Part of the Flask-Login id: bumping it ends every session of this user.
    session_version: Mapped[int] = mapped_column(default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock_now)
    # Consecutive failed second-factor codes across codes, resends and TOTP; success resets.
    mfa_failed_count: Mapped[int] = mapped_column(default=0, server_default="0")
    mfa_locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_mfa_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The time step of the last authenticator-app code accepted for this user: that step and
    # every one before it are replays. Kept here rather than on the enrollment so that a right
    # code's success (this step, the count reset, the last MFA login) is one conditional UPDATE
    # (portal/mfa/methods.py); set afresh whenever an authenticator app is set up.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    # Copies of the active method (mfa_enrollments), kept by database triggers (migration 0016)
    # so the practice review can sort and filter a practice's users from indexes on this table:
    # the method's place among the methods' labels in alphabetical order (Authenticator Apps 0,
    # Email 1, SMS 2), and when it was set up. Both NULL without MFA. Never written by the app.
    mfa_method_rank: Mapped[int | None] = mapped_column(SmallInteger)
    mfa_enrolled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Consecutive failed passwords; at the limit the account is locked for a while.
    failed_password_count: Mapped[int] = mapped_column(default=0, server_default="0")
    password_locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())

    practice: Mapped["Practice | None"] = relationship(back_populates="users")  # noqa: F821
    mfa: Mapped["MfaEnrollment | None"] = relationship(back_populates="user", uselist=False)  # noqa: F821

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def role_label(self) -> str:
        return ROLE_LABELS[self.role]

    def get_id(self) -> str:
        """Alternative id: sessions minted before the last version bump stop resolving."""
        return f"{self.id}:{self.session_version}"

    def __repr__(self) -> str:
        return f"<User {self.id} {self.role}>"
