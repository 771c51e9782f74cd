"""One-time SMS and email codes: generation, keyed storage, limits and atomic verification."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import bindparam, delete, func, select, text, update

from portal import delivery, metrics
from portal.accounts import lockout
from portal.extensions import db
from portal.mfa.errors import (
    AccountLocked,
    CodeExpired,
    CodeUsedUp,
    InvalidCode,
    MalformedCode,
    NoActiveCode,
    SendThrottled,
)
from portal.models import MfaCode, User

_CODE_RE = re.compile(r"[0-9]{6}", re.ASCII)
_SEPARATORS = re.compile(r"[ \t\-]")


def generate_code() -> str:
    """Six digits from the OS CSPRNG, leading zeros kept."""
    return f"{secrets.randbelow(1_000_000):06d}"


def new_challenge() -> str:
    """A random id binding a code to the session that asked for it."""
    return secrets.token_hex(16)


def normalise_code(raw: str | None) -> str:
    """Drop spaces and dashes; accept exactly six ASCII digits. Raises MalformedCode."""
    if not isinstance(raw, str) or len(raw) > 32:
        raise MalformedCode()
    code = _SEPARATORS.sub("", raw)
    if not _CODE_RE.fullmatch(code):
        raise MalformedCode()
    return code


def _key(purpose: str) -> bytes:
    # Derived from SECRET_KEY, which lives outside the database.
    return hashlib.sha256(f"portal.mfa.{purpose}:".encode() + current_app.config["SECRET_KEY"].encode()).digest()


def code_hmac(user_id: int, purpose: str, challenge: str, code: str) -> str:
    message = f"{user_id}|{purpose}|{challenge}|{code}".encode()
    return hmac.new(_key("code"), message, hashlib.sha256).hexdigest()


def destination_hash(destination: str) -> str:
    return hmac.new(_key("destination"), destination.encode(), hashlib.sha256).hexdigest()


# -- the per-account failure counter ----------------------------------------------------


def check_not_locked(user: User, now: datetime) -> None:
    """Raise AccountLocked while the user's code lock runs."""
    if user.mfa_locked_until is not None and user.mfa_locked_until > now:
        raise AccountLocked(user.mfa_locked_until - now)


# -- issuing ----------------------------------------------------------------------------


def recent_codes(user: User, now: datetime) -> list:
    """The user's codes of the last hour (or longer, if the cooldown or a code's life is longer):
    everything the sending limits and the code page need, in one statement."""
    config = current_app.config
    window = max(timedelta(hours=1), config["MFA_RESEND_COOLDOWN"], config["MFA_CODE_TTL"])
    return db.session.execute(_RECENT, {"user_id": user.id, "since": now - window}).all()


_RECENT = (
    select(MfaCode.created_at, MfaCode.purpose, MfaCode.challenge, MfaCode.consumed_at, MfaCode.voided_at,
           MfaCode.expires_at, MfaCode.attempts)
    .where(MfaCode.user_id == bindparam("user_id"), MfaCode.created_at > bindparam("since"))
    .order_by(MfaCode.created_at)
)


def check_send_allowed(user: User, channel: str, destination: str, now: datetime, *,
                       purpose: str | None = None, challenge: str | None = None, recent: list | None = None,
                       count: bool = False) -> None:
    """Raise SendThrottled when a new code may not be sent yet; `count` it in the metrics when
    a send was really refused (not when the code page only asks when "click here" works again).
    """
    try:
        _check_limits(user, channel, destination, now, purpose=purpose, challenge=challenge, recent=recent)
    except SendThrottled as throttled:
        if count:
            metrics.send_throttled(throttled.reason)
        raise


def _check_limits(user: User, channel: str, destination: str, now: datetime, *,
                  purpose: str | None, challenge: str | None, recent: list | None) -> None:
    """Raise SendThrottled when a new code may not be sent yet.

    Limits: a resend cooldown, codes per user per hour, SMS per number per day, and a daily
    ceiling on all texts. They protect users from floods and the SMS budget from pumping.
    The cooldown is between codes of one sign-in or setup (purpose and challenge), so a Log In
    right after setting up SMS still gets its code; the hourly limit counts every code.
    `recent` is `recent_codes(user, now)` when the caller has it already.
    """
    config = current_app.config
    if recent is None:
        recent = recent_codes(user, now)
    same_step = [row.created_at for row in recent
                 if purpose is None or challenge is None or (row.purpose == purpose and row.challenge == challenge)]
    if same_step and now - same_step[-1] < config["MFA_RESEND_COOLDOWN"]:
        raise SendThrottled(config["MFA_RESEND_COOLDOWN"] - (now - same_step[-1]))
    hour_ago = now - timedelta(hours=1)
    last_hour = [row.created_at for row in recent if row.created_at > hour_ago]
    if len(last_hour) >= config["MFA_CODES_PER_HOUR"]:
        raise SendThrottled(last_hour[0] + timedelta(hours=1) - now, reason="volume")
    if delivery.channel(channel).metered:
        day_ago = now - timedelta(days=1)
        sent = list(db.session.scalars(
            select(MfaCode.created_at)
            .where(MfaCode.destination_hash == destination_hash(destination), MfaCode.channel == channel,
                   MfaCode.created_at > day_ago)
            .order_by(MfaCode.created_at)
        ))
        if len(sent) >= config["MFA_SMS_PER_NUMBER_PER_DAY"]:
            raise SendThrottled(sent[0] + timedelta(days=1) - now, reason="volume")
        # A ceiling on all texts per day caps the cost of an SMS-pumping attack spread
        # across many accounts and numbers.
        total = db.session.scalar(
            select(func.count(MfaCode.id)).where(MfaCode.channel == channel, MfaCode.created_at > day_ago)
        )
        if total >= config["MFA_SMS_GLOBAL_PER_DAY"]:
            current_app.logger.error("global daily SMS cap reached (%s)", total)
            raise SendThrottled(timedelta(hours=1), reason="volume")


def void_live_codes(user: User, now: datetime, *, purpose: str | None = None) -> None:
    """Make every unused code of the user (of one purpose, or all) stop working. Not committed."""
    statement = update(MfaCode).where(MfaCode.user_id == user.id, MfaCode.consumed_at.is_(None),
                                      MfaCode.voided_at.is_(None))
    if purpose is not None:
        statement = statement.where(MfaCode.purpose == purpose)
    db.session.execute(statement.values(voided_at=now).execution_options(synchronize_session=False))


# Taking the user's row (a write that changes nothing) serialises the sends of one account: on
# PostgreSQL it holds the row lock, on SQLite the database's single writer lock, until commit.
_TAKE_USER = (
    update(User).where(User.id == bindparam("uid")).values(mfa_locked_until=User.mfa_locked_until)
    .returning(User.mfa_locked_until).execution_options(synchronize_session=False)
)
_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(:key)")


def _advisory_key(*parts: str) -> int:
    """A 64-bit lock key for PostgreSQL's transaction-scoped advisory locks."""
    digest = hashlib.sha256("|".join(("portal.sends", *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _serialise_sends(user: User, channel: str, destination: str) -> datetime | None:
    """Make the limit decision below atomic: one send decision at a time per account, per phone
    number and (texts) for the daily ceiling. Returns the account's current code lock.

    The locks last until the caller commits the reservation, which `deliver_code` does before
    calling the provider, so no lock is held while a message is in flight.
    """
    locked_until = db.session.execute(_TAKE_USER, {"uid": user.id}).scalar_one()
    if delivery.channel(channel).metered and db.session.get_bind().dialect.name == "postgresql":
        # Always in this order (account, number, ceiling), so two sends never wait on each other
        # in a cycle. SQLite needs none of these: its writer lock already serialised everything.
        db.session.execute(_ADVISORY_LOCK, {"key": _advisory_key("number", destination_hash(destination))})
        db.session.execute(_ADVISORY_LOCK, {"key": _advisory_key("ceiling", channel)})
    return locked_until


def issue(user: User, *, purpose: str, channel: str, destination: str, challenge: str,
          now: datetime) -> tuple[MfaCode, str]:
    """Reserve a new code: decide every sending limit and record the code, atomically.

    Returns (record, plain code); the plain code goes to the sender and nowhere else. The
    record counts toward the limits at once but is created void, so it cannot be used until
    `confirm_sent()`; a failed send `withdraw()`s it. Not committed: the caller commits the
    reservation (releasing the locks) before handing the message over.

    Raises AccountLocked (no code is sent while codes are locked), SendThrottled.
    """
    locked_until = _serialise_sends(user, channel, destination)
    if locked_until is not None and locked_until > now:
        raise AccountLocked(locked_until - now)
    check_send_allowed(user, channel, destination, now, purpose=purpose, challenge=challenge, count=True)
    code = generate_code()
    record = MfaCode(
        user_id=user.id,
        purpose=purpose,
        channel=channel,
        destination_hash=destination_hash(destination),
        challenge=challenge,
        code_hmac=code_hmac(user.id, purpose, challenge, code),
        created_at=now,
        expires_at=now + current_app.config["MFA_CODE_TTL"],
        voided_at=now,  # reserved: usable only once sent
    )
    db.session.add(record)
    db.session.flush()
    return record, code


def confirm_sent(user: User, record: MfaCode, now: datetime) -> None:
    """The message went out: the new code works and every earlier one of its purpose stops. Not committed."""
    void_live_codes(user, now, purpose=record.purpose)
    db.session.execute(update(MfaCode).where(MfaCode.id == record.id).values(voided_at=None)
                       .execution_options(synchronize_session=False))


def withdraw(record: MfaCode) -> None:
    """The message never went out: the reserved code goes, and with it its weight in the limits
    (a provider failure costs the user nothing). Not committed."""
    db.session.execute(delete(MfaCode).where(MfaCode.id == record.id))


def send_status(user: User, channel: str, destination: str, now: datetime, *, purpose: str,
                challenge: str) -> tuple[datetime | None, str | None]:
    """For the code page: when "click here" works again (None: now), and the state of the code
    sent for this sign-in or setup: "live", "expired", "used_up" or None (none waiting), so the
    page never claims a code was sent and says why one no longer works."""
    recent = recent_codes(user, now)
    mine = [row for row in recent if row.purpose == purpose and row.challenge == challenge
            and row.consumed_at is None and row.voided_at is None]
    state = None
    if mine:
        latest = mine[-1]
        if latest.attempts >= current_app.config["MFA_CODE_MAX_ATTEMPTS"]:
            state = "used_up"
        elif latest.expires_at <= now:
            state = "expired"
        else:
            state = "live"
    return resend_available_at(user, channel, destination, now, purpose=purpose, challenge=challenge,
                               recent=recent), state


def resend_available_at(user: User, channel: str, destination: str, now: datetime, *,
                        purpose: str | None = None, challenge: str | None = None,
                        recent: list | None = None) -> datetime | None:
    """When "click here" will work again, or None if it works now."""
    try:
        check_send_allowed(user, channel, destination, now, purpose=purpose, challenge=challenge, recent=recent)
    except SendThrottled as throttled:
        return now + throttled.retry_after
    return None


# -- verifying --------------------------------------------------------------------------


def verify(user: User, *, purpose: str, challenge: str, raw_code: str, now: datetime) -> MfaCode:
    """Accept the code once, or raise.

    Every comparison is paid for before it is made, atomically: one of the account's allowed
    wrong codes (`lockout.claim_attempt`) and one of the code's tries (a conditional UPDATE of
    its attempts). So a burst of guesses, however parallel, compares at most as many codes as
    the limits allow, and a right code is refused while the account is locked. An expired or
    spent code costs nothing. Consumption is a conditional UPDATE too: of many requests
    carrying the right code exactly one succeeds. Failures are committed (they count); success
    is not: the caller commits it with its own work, as one transaction.

    Raises MalformedCode (not counted), AccountLocked, NoActiveCode, CodeExpired, CodeUsedUp,
    InvalidCode.
    """
    code = normalise_code(raw_code)
    lockout.claim_attempt(user, lockout.CODE, now)
    record = db.session.scalar(
        select(MfaCode)
        .where(MfaCode.user_id == user.id, MfaCode.purpose == purpose, MfaCode.challenge == challenge,
               MfaCode.consumed_at.is_(None), MfaCode.voided_at.is_(None))
        .order_by(MfaCode.id.desc())
        .limit(1)
    )
    if record is None:
        _failed(user, now)
        raise NoActiveCode()
    if now >= record.expires_at:
        db.session.rollback()  # gives the claimed attempt back: nothing was compared
        raise CodeExpired()
    max_attempts = current_app.config["MFA_CODE_MAX_ATTEMPTS"]
    tries = db.session.execute(
        update(MfaCode)
        .where(MfaCode.id == record.id, MfaCode.attempts < max_attempts, MfaCode.consumed_at.is_(None),
               MfaCode.voided_at.is_(None))
        .values(attempts=MfaCode.attempts + 1)
        .returning(MfaCode.attempts)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if tries is None:
        db.session.rollback()
        raise CodeUsedUp()
    if hmac.compare_digest(record.code_hmac, code_hmac(user.id, purpose, challenge, code)):
        consumed = db.session.execute(
            update(MfaCode).where(MfaCode.id == record.id, MfaCode.consumed_at.is_(None))
            .values(consumed_at=now).execution_options(synchronize_session=False)
        ).rowcount
        if consumed == 1:
            lockout.attempt_succeeded(user, lockout.CODE)
            return record
        db.session.rollback()
        raise InvalidCode()
    _failed(user, now)
    raise CodeUsedUp() if tries >= max_attempts else InvalidCode()


def _failed(user: User, now: datetime) -> None:
    """Keep the claimed attempt as a failure (committed); the failure that locks says so."""
    if lockout.attempt_failed(user, lockout.CODE, now):
        raise AccountLocked(lockout.CODE.duration())
