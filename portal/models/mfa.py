"""Multi-factor authentication: a user's one active method, a method being set up, and codes."""

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

from portal.extensions import db
from portal.models.base import UTCDateTime, clock_now

# The schema's own guard; what each method is and does lives in portal.mfa.methods.
_METHOD_CHECK = "method IN ('sms', 'email', 'totp')"
# Authenticator Apps hold either our own secret (QR code) or a Symantec VIP Access Credential ID.
_DETAILS_CHECK = (
    "(method = 'sms' AND phone_e164 IS NOT NULL AND totp_secret IS NULL AND vip_credential_id IS NULL)"
    " OR (method = 'totp' AND phone_e164 IS NULL AND ((totp_secret IS NOT NULL AND vip_credential_id IS NULL)"
    " OR (totp_secret IS NULL AND vip_credential_id IS NOT NULL)))"
    " OR (method = 'email' AND phone_e164 IS NULL AND totp_secret IS NULL AND vip_credential_id IS NULL)"
)


class _MethodDetails:
    """A method and what it needs: a phone number for SMS, an encrypted secret for apps.

    Shared by the active method and the one being set up; one row per user in each.
    """

    @declared_attr.directive
    def __table_args__(cls):
        # New constraint objects per table (a constraint can belong to one table only).
        return (
            CheckConstraint(_METHOD_CHECK, name="method_allowed"),
            CheckConstraint(_DETAILS_CHECK, name="details_match_method"),
        )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    method: Mapped[str] = mapped_column(String(10))
    phone_e164: Mapped[str | None] = mapped_column(String(16))
    # Fernet token (MultiFernet, keys from configuration); never the plain secret.
    totp_secret: Mapped[str | None] = mapped_column(Text)
    # A Symantec VIP Access credential (four letters, eight digits); its codes are checked by VIP.
    vip_credential_id: Mapped[str | None] = mapped_column(String(12))


class MfaEnrollment(_MethodDetails, db.Model):
    """The user's active second factor. One row per user: one method per user."""

    __tablename__ = "mfa_enrollments"

    # VIP Access: keyed hash of the last code VIP accepted, and the time step it was accepted
    # in: the same code again soon after is a replay. (An authenticator app's last step is on
    # the user, users.totp_last_step; the last use of any method is users.last_mfa_at.)
    vip_last_code: Mapped[str | None] = mapped_column(String(64))
    vip_last_step: Mapped[int | None] = mapped_column(BigInteger)
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock_now)

    user = relationship("User", back_populates="mfa")


class MfaPendingEnrollment(_MethodDetails, db.Model):
    """A method being set up; inactive until its code is verified. At most one per user."""

    __tablename__ = "mfa_pending_enrollments"

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock_now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MfaCode(db.Model):
    """A one-time SMS or email code. Only a keyed HMAC of the code is stored.

    The HMAC covers user, purpose and challenge, so a code is bound to the session that asked
    for it and to login or enrollment.
    """

    __tablename__ = "mfa_codes"
    __table_args__ = (
        CheckConstraint("purpose IN ('login', 'enroll')", name="purpose_allowed"),
        CheckConstraint("channel IN ('sms', 'email')", name="channel_allowed"),
        Index("ix_mfa_codes_user_purpose", "user_id", "purpose"),
        Index("ix_mfa_codes_destination_created", "destination_hash", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(10))
    channel: Mapped[str] = mapped_column(String(10))
    # Keyed hash of the destination, for per-number send limits without storing it again.
    destination_hash: Mapped[str] = mapped_column(String(64))
    challenge: Mapped[str] = mapped_column(String(64))
    code_hmac: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock_now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
