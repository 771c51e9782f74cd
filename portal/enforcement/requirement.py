"""Requiring MFA for a whole practice (all or nothing), and admins' requests for it."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from portal import audit, metrics
from portal.enforcement import review
from portal.enforcement.errors import AlreadyPending, InvalidStart, NoChange, ReasonRequired, RequestClosed
from portal.extensions import db
from portal.models import Practice, RequirementRequest, User
from portal.tasks import jobs
from portal.wording import duration_in_words, format_time


def set_requirement(practice: Practice, required: bool, *, actor: User, reason: str, now: datetime,
                    starts: datetime | None = None, request: RequirementRequest | None = None) -> int:
    """Require MFA for the practice (at once, or from `starts`), move that date, or stop
    requiring it. Commits.

    Returns how many active users without MFA will be emailed. Raises NoChange,
    ReasonRequired, InvalidStart. In force, every active user without MFA is sent to
    enrollment at their next request (the gate checks on every request); before a start date
    they see a banner and get reminders. Notices go through the queue in batches after the
    commit, so the request never loops over users. Two changes at once: the write is a
    conditional UPDATE on the state read, so the second finds the first's result (and, when
    that is what it asked for, raises NoChange).
    """
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired()
    for _attempt in range(3):
        starts = _check_start(practice, required, starts, now) if required else None
        if practice.mfa_required == required and practice.mfa_required_from == starts:
            raise NoChange(required)
        if _write(practice, required, starts, actor=actor, reason=reason, now=now, request=request):
            return _committed(practice, required, starts)
        db.session.rollback()
        db.session.refresh(practice)
    raise NoChange(required)


def _write(practice: Practice, required: bool, starts: datetime | None, *, actor: User, reason: str,
           now: datetime, request: RequirementRequest | None = None) -> bool:
    """Change the requirement if it is still as `practice` was read, and audit it (no commit).

    False, with nothing written, when someone changed it since: one UPDATE that names the state
    read, so of two changes at once only one is made (PostgreSQL re-checks the condition after
    waiting for the other's row lock; SQLite has one writer at a time).
    """
    previous_required, previous_from = practice.mfa_required, practice.mfa_required_from
    changed = db.session.execute(
        update(Practice)
        .where(Practice.id == practice.id, Practice.mfa_required == previous_required,
               Practice.mfa_required_from == previous_from)
        .values(mfa_required=required, mfa_required_from=starts)
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        return False
    db.session.expire(practice)
    previous = previous_from if previous_required else None
    audit.record(
        "practice.requirement_changed", actor=actor, practice_id=practice.id, now=now,
        detail={"required": required, "from": format_time(starts) if starts else None,
                "previous_from": format_time(previous) if previous else None,
                "reason": reason[:500], "request_id": request.id if request else None},
    )
    return True


def _committed(practice: Practice, required: bool, starts: datetime | None) -> int:
    """Commit a written change, then queue its notices; returns how many users without MFA they reach."""
    db.session.commit()
    metrics.support_action("requirement_changed")
    kind = ("scheduled" if starts else "now") if required else "cancelled"
    jobs.enqueue(jobs.practice_notices, practice.id, kind, jobs.new_key(f"requirement-{kind}"),
                 starts.isoformat() if starts else None)
    return review.counts(practice.id).coverage.without


def _check_start(practice: Practice, required: bool, starts: datetime | None, now: datetime) -> datetime | None:
    """A start date must be today (which means now) or lie ahead, within the grace period
    allowed; None means now."""
    if starts is not None and starts < start_of_day(now.date()):
        raise InvalidStart(f"{starts:%Y-%m-%d} has passed: choose today (to start now) or a later date.")
    if starts is None or starts <= now:
        return None
    longest = current_app.config["MFA_REQUIREMENT_MAX_GRACE"]
    if starts > now + longest:
        raise InvalidStart(f"Choose a start within the next {duration_in_words(longest)}.")
    if practice.requires_mfa_at(now):
        raise InvalidStart("MFA is already required for this practice. Stop requiring it first to set a later start.")
    return starts


def start_of_day(day: date) -> datetime:
    """A chosen start date as a moment: its first minute, UTC (pages show the zone)."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


# Reminders to users without MFA before a start date, as (kind, how long before the start).
REMINDERS = (("week", timedelta(days=7)), ("day", timedelta(days=1)), ("today", timedelta(0)))


def send_due_reminders(now: datetime) -> list[tuple[int, str]]:
    """Queue the reminders that are due: 7 days and 1 day before a practice's start date, and
    on the day. Each is due for one day from its moment (the periodic task runs hourly) and is
    queued once per practice, start date and kind, however often this runs or on how many
    consumers. Returns the (practice id, kind) pairs queued now."""
    queued = []
    practices = db.session.scalars(
        select(Practice).where(Practice.mfa_required.is_(True), Practice.mfa_required_from.is_not(None),
                               Practice.mfa_required_from > now - timedelta(days=1),
                               Practice.mfa_required_from <= now + timedelta(days=7))
    ).all()
    for practice in practices:
        starts = practice.mfa_required_from
        for kind, before in REMINDERS:
            due = starts - before
            change = f"{practice.id}:{starts.isoformat()}:{kind}"
            if due <= now < due + timedelta(days=1) and jobs.claim(f"reminders:{change}"):
                jobs.enqueue(jobs.practice_notices, practice.id, kind, change, starts.isoformat())
                queued.append((practice.id, kind))
    return queued


def make_request(admin: User, *, require: bool, note: str, now: datetime,
                 starts: datetime | None = None) -> RequirementRequest:
    """Record a practice admin's request (to require MFA, from `starts` or at once, or to stop);
    support decides. Commits. Raises NoChange, AlreadyPending, InvalidStart."""
    practice = admin.practice
    starts = _check_start(practice, require, starts, now) if require else None
    if practice.mfa_required == require and practice.mfa_required_from == starts:
        raise NoChange(require)
    if open_request(practice.id) is not None:
        raise AlreadyPending()
    request = RequirementRequest(
        practice_id=practice.id, requested_by_id=admin.id, require=require, required_from=starts,
        note=(note or "").strip()[:1000], status="pending", created_at=now,
    )
    db.session.add(request)
    try:
        db.session.flush()
    except IntegrityError as error:  # another request won the race for the one open slot
        db.session.rollback()
        raise AlreadyPending() from error
    audit.record("practice.request_made", actor=admin, practice_id=practice.id, now=now,
                 detail={"request": request.id, "require": require, "from": format_time(starts) if starts else None})
    db.session.commit()
    return request


def open_request(practice_id: int) -> RequirementRequest | None:
    return db.session.scalar(
        select(RequirementRequest).where(RequirementRequest.practice_id == practice_id,
                                         RequirementRequest.status == "pending")
    )


def open_requests() -> list[RequirementRequest]:
    """Every request waiting for support, oldest first."""
    return list(db.session.scalars(
        select(RequirementRequest).where(RequirementRequest.status == "pending").order_by(RequirementRequest.id)
    ))


def latest_request(practice_id: int) -> RequirementRequest | None:
    return db.session.scalar(
        select(RequirementRequest).where(RequirementRequest.practice_id == practice_id)
        .order_by(RequirementRequest.id.desc()).limit(1)
    )


def decide(request: RequirementRequest, *, actor: User, approve: bool, note: str, now: datetime) -> None:
    """Approve (and apply) or decline a request. Commits. Raises RequestClosed, ReasonRequired,
    NoChange, InvalidStart. Of two decisions at once, one is made: the other gets RequestClosed."""
    note = _decision_note(request, note)
    practice = request.practice
    starts = _requested_start(request, now)
    applies = approve and _changes(practice, request.require, starts)
    if applies:
        _check_start(practice, request.require, starts, now)
    if not _close(request, actor=actor, approve=approve, note=note, now=now):
        raise RequestClosed()
    if applies:
        if not _write(practice, request.require, starts, actor=actor, reason=f"Request #{request.id}: {note}",
                      now=now, request=request):
            db.session.rollback()
            raise RequestClosed()
        _committed(practice, request.require, starts)
    else:
        db.session.commit()
    metrics.support_action("request_decided")


def _decision_note(request: RequirementRequest, note: str) -> str:
    if request.status != "pending":
        raise RequestClosed()
    note = (note or "").strip()
    if not note:
        raise ReasonRequired("a note for the practice admin")
    return note[:1000]


def _close(request: RequirementRequest, *, actor: User, approve: bool, note: str, now: datetime) -> bool:
    """Mark a pending request decided and audit it (no commit); False if it was decided meanwhile."""
    status = "approved" if approve else "declined"
    closed = db.session.execute(
        update(RequirementRequest)
        .where(RequirementRequest.id == request.id, RequirementRequest.status == "pending")
        .values(status=status, decided_by_id=actor.id, decided_at=now, decision_note=note)
        .execution_options(synchronize_session=False)
    ).rowcount
    if closed != 1:
        db.session.rollback()
        return False
    db.session.expire(request)
    audit.record("practice.request_decided", actor=actor, practice_id=request.practice_id, now=now,
                 detail={"request": request.id, "approved": approve})
    return True


def _requested_start(request: RequirementRequest, now: datetime) -> datetime | None:
    """A request's start date, or None (at once) when it asked for none or the date has passed."""
    return request.required_from if request.require and request.required_from and request.required_from > now \
        else None


def _changes(practice: Practice, required: bool, starts: datetime | None) -> bool:
    return practice.mfa_required != required or (required and practice.mfa_required_from != starts)


# ----------------------------------------------------------------- what a change will do, before it is made
@dataclass(frozen=True)
class Preview:
    """What changing a practice's requirement does, as support confirms it: the change, and
    the people it reaches (counted from the kept per-practice counts, never a loop over users).

    `token` binds a confirmation to these numbers: if the practice or its users change before
    support confirms, the token no longer matches and the numbers are shown again.
    """

    practice_id: int
    practice_name: str
    required: bool
    starts: datetime | None
    was_required: bool
    was_from: datetime | None
    users: int
    without_mfa: int
    request_id: int | None = None
    reminders: tuple[str, ...] = ()

    @property
    def changes(self) -> bool:
        return self.was_required != self.required or (self.required and self.was_from != self.starts)

    @property
    def with_mfa(self) -> int:
        return self.users - self.without_mfa

    @property
    def emailed(self) -> int:
        """Every change emails the practice's active users without MFA, and nobody else."""
        return self.without_mfa if self.changes else 0

    @property
    def token(self) -> str:
        fields = (self.practice_id, self.was_required, _iso(self.was_from), self.required, _iso(self.starts),
                  self.users, self.without_mfa, self.request_id)
        key = hashlib.sha256(b"portal.requirement-preview:" + current_app.config["SECRET_KEY"].encode()).digest()
        return hmac.new(key, "|".join(map(str, fields)).encode(), hashlib.sha256).hexdigest()[:32]

    def matches(self, seen: str | None) -> bool:
        # As bytes: compare_digest refuses text with a character beyond ASCII, and a forged
        # token may hold any.
        return hmac.compare_digest(self.token.encode(), (seen or "")[:64].encode())

    @property
    def summary(self) -> str:
        """The change in one line."""
        name = self.practice_name
        if not self.changes:
            return f"No change: {name} already has this setting."
        if not self.required:
            if self.was_from is not None:
                return f"Cancel the requirement that {name} was to have from {format_time(self.was_from)}."
            return f"Stop requiring MFA for everyone in {name}: MFA becomes optional."
        if self.starts is None:
            return f"Require MFA for everyone in {name}, starting now."
        if self.was_required and self.was_from is not None:
            return (f"Move the start of {name}'s requirement from {format_time(self.was_from)} "
                    f"to {format_time(self.starts)}.")
        return f"Require MFA for everyone in {name} from {format_time(self.starts)}."

    @property
    def effect(self) -> str:
        """Who the change reaches and how, in the words of what the portal then does."""
        users = _count(self.users, "user")
        if not self.changes:
            return f"{users}; nobody is emailed and nothing else changes."
        if self.required and self.without_mfa == 0:
            return f"{users}; all of them have MFA already, so nobody has to set it up and nobody is emailed."
        if self.required and self.starts is None:
            return (f"{users}; {self.without_mfa} will have to set up MFA at their next Log In "
                    "(anyone logged in now, at their next click). They are emailed now.")
        if self.required:
            reminded = f" and reminded {_listed(self.reminders)}" if self.reminders else ""
            return (f"{users}; {self.without_mfa} without MFA will have to set it up from "
                    f"{format_time(self.starts)}. They are emailed now{reminded}.")
        if self.without_mfa == 0:
            return f"{users}; all of them keep their MFA, and nobody is emailed."
        emailed = "is" if self.without_mfa == 1 else "are"
        keep = "keeps" if self.with_mfa == 1 else "keep"
        return (f"{users}; the {self.without_mfa} without MFA {emailed} emailed that it is no longer required"
                + (f"; the {self.with_mfa} with MFA {keep} it." if self.with_mfa else "."))


@dataclass(frozen=True)
class Confirmation:
    """The outcome of a confirmed change: made, or not (the numbers changed: confirm `preview` again)."""

    applied: bool
    preview: Preview


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else "-"


def _listed(words: tuple[str, ...]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


# When each reminder goes, in words (see REMINDERS).
_REMINDER_WORDS = {"week": "a week before", "day": "the day before", "today": "on the day"}


def _reminders_ahead(starts: datetime | None, now: datetime) -> tuple[str, ...]:
    """The reminders still to come before `starts`: each is sent within a day of its moment."""
    if starts is None:
        return ()
    return tuple(_REMINDER_WORDS[kind] for kind, before in REMINDERS if starts - before + timedelta(days=1) > now)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _preview(practice: Practice, required: bool, starts: datetime | None, now: datetime,
             request: RequirementRequest | None = None) -> Preview:
    coverage = review.counts(practice.id).coverage
    return Preview(practice_id=practice.id, practice_name=practice.name, required=required, starts=starts,
                   was_required=practice.mfa_required, was_from=practice.mfa_required_from,
                   users=coverage.total, without_mfa=coverage.without,
                   request_id=request.id if request else None, reminders=_reminders_ahead(starts, now))


def preview(practice: Practice, required: bool, starts: datetime | None, *, now: datetime) -> Preview:
    """What requiring MFA (at once or from `starts`), moving the date or stopping would do,
    without doing it. Raises NoChange and InvalidStart, as the change itself would."""
    starts = _check_start(practice, required, starts, now) if required else None
    if not _changes(practice, required, starts):
        raise NoChange(required)
    return _preview(practice, required, starts, now)


def confirm_change(practice: Practice, required: bool, starts: datetime | None, *, seen: str | None, actor: User,
                   reason: str, now: datetime) -> Confirmation:
    """Make the change support saw previewed (`seen`: its token), if it still does what the
    preview said. Commits when applied. Otherwise nothing changes and the fresh preview comes
    back to be confirmed again. Raises NoChange (also when a parallel confirmation made it
    first), InvalidStart, ReasonRequired."""
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired()
    fresh = preview(practice, required, starts, now=now)
    if not fresh.matches(seen):
        return Confirmation(False, fresh)
    if not _write(practice, fresh.required, fresh.starts, actor=actor, reason=reason, now=now):
        db.session.rollback()
        db.session.refresh(practice)
        return Confirmation(False, preview(practice, required, starts, now=now))
    _committed(practice, fresh.required, fresh.starts)
    return Confirmation(True, fresh)


def preview_request(request: RequirementRequest, *, now: datetime) -> Preview:
    """What approving a practice admin's request would do. Raises RequestClosed, InvalidStart."""
    if request.status != "pending":
        raise RequestClosed()
    practice = request.practice
    starts = _requested_start(request, now)
    if _changes(practice, request.require, starts):
        _check_start(practice, request.require, starts, now)
    return _preview(practice, request.require, starts, now, request)


def approve_request(request: RequirementRequest, *, seen: str | None, actor: User, note: str,
                    now: datetime) -> Confirmation:
    """Approve the request support saw previewed (`seen`: its token) and apply it, if it still
    does what the preview said. Commits when applied; otherwise nothing changes and the fresh
    preview comes back. Raises RequestClosed (also to the second of two at once),
    ReasonRequired, InvalidStart."""
    note = _decision_note(request, note)
    fresh = preview_request(request, now=now)
    if not fresh.matches(seen):
        return Confirmation(False, fresh)
    decide(request, actor=actor, approve=True, note=note, now=now)
    return Confirmation(True, fresh)


def clear_effect(user: User, *, now: datetime) -> str:
    """What support clearing `user`'s MFA does, in a sentence with their name (as
    `mfa.enrollment.clear_by_support` does it: every session ends, the user is emailed)."""
    sentence = f"Clearing MFA ends {user.display_name}'s sessions and emails them."
    practice = user.practice
    if user.role == "support" or (practice is not None and practice.requires_mfa_at(now)):
        return sentence + " MFA is required of them, so they will have to set it up again at their next Log In."
    starts = practice.requirement_starts(now) if practice is not None else None
    if starts is not None:
        return sentence + f" They can log in with their password alone until {format_time(starts)}."
    return sentence + " They can then log in with their password alone."
