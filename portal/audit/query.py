"""Reading the audit trail: filtered, newest first, paged by id (keyset) so deep pages stay fast.

Each row says whether it is sealed; the page says when the last checkpoint was written (read
in the same statement as the rows).

**Filters people type.** "Name or email" and "Practice" are text: partial and case-insensitive
(an exact email, or an exact practice name, names that one alone). They are resolved to ids
first, at most MATCH_LIMIT of them, in one small query on `users` or `practices`; the events
are then found by the indexed ids, never by a LIKE joined onto the trail. A practice admin's
search looks only at the people of their practice and at support staff (who act on their
people), and every event read is of their practice: no filter can widen that scope. Links
from support's user and practice pages pass the id (`user=`, `practice=`); a practice admin's
`practice=` is ignored. Input that cannot be used is left out and the page says so.

**Password steps folded under their Log In.** A `login.password_succeeded` row is the
password step of a completed Log In when the next of that user's `login.password_succeeded`
and `login.succeeded` events (by id, within the same practice) is a `login.succeeded`, no
more than MFA_PENDING_LOGIN_TTL later (a code step cannot take longer; a Log In without MFA
writes both in one request). Every Log In writes its password step before it succeeds (the
code step and the must-set-up-MFA path included), so each `login.succeeded` has at most one
such step and each step belongs to one Log In. By default that step is not a row of its own:
it is shown inside its Log In's row (a `<details>`, no JavaScript needed), wherever the two
fall across pages. `steps=all` shows every step as its own row. Failed passwords, and password
steps no Log In completed, are always rows. With the event filter set to the password step
itself, nothing is folded.

The pairing is read in the page's own statement (correlated lookups on the (subject, id)
index for the page's rows only), so the page costs the same number of statements either way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from flask import current_app
from sqlalchemy import case, false, func, or_, select

from portal.audit import EVENT_TYPES, labels
from portal.extensions import db
from portal.models import AuditEvent, Practice, User
from portal.models.audit import AuditCheckpoint

PER_PAGE = 50
MATCH_LIMIT = 50  # people or practices one text filter may stand for
TEXT_LIMIT = 254  # the longest email; longer text is not a name or an email

PASSWORD_STEP = "login.password_succeeded"
LOGGED_IN = "login.succeeded"


def _like(text: str) -> str:
    """A case-insensitive "contains" pattern in which %, _ and \\ match themselves (escape "\\")."""
    return "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@dataclass(frozen=True)
class AuditFilter:
    who: str = ""  # a name or email, as typed
    practice_name: str = ""  # support only
    user_id: int | None = None  # from a link: one person
    practice_id: int | None = None  # the admin's own practice (fixed), or one practice from a link
    scoped: bool = False  # practice_id is the admin's practice: it never changes
    event_type: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    before: int | None = None
    every_step: bool = False
    problems: tuple[str, ...] = ()

    @classmethod
    def from_args(cls, args, *, practice_id: int | None = None) -> AuditFilter:
        """Read filters from a query string. Values that cannot be used are left out and named in
        `problems`; nothing here raises."""
        problems = []

        def integer(name, limit=2**31):
            # Ids of users and practices are 32-bit; event ids are 64-bit.
            raw = args.get(name, "")
            if raw == "":
                return None
            try:
                value = int(raw)
            except ValueError:
                value = None
            if value is None or not 0 < value < limit:
                problems.append("A link's filter was not understood, so it was left out.")
                return None
            return value

        def day(name, label, end=False):
            raw = args.get(name, "")
            if raw == "":
                return None
            try:
                parsed = datetime.strptime(raw, "%Y-%m-%d").date()
            except ValueError:
                problems.append(f"“{label}” must be a date such as 2026-12-01, so it was left out.")
                return None
            return datetime.combine(parsed, time.max if end else time.min, tzinfo=UTC)

        def text(name, label):
            raw = " ".join(args.get(name, "").split())
            if len(raw) > TEXT_LIMIT:
                problems.append(f"“{label}” is longer than {TEXT_LIMIT} characters, so it was left out.")
                return ""
            if any(ord(char) < 32 for char in raw):
                problems.append(f"“{label}” holds characters no name has, so it was left out.")
                return ""
            return raw

        event_type = args.get("event_type", "")
        if event_type and event_type not in EVENT_TYPES:
            problems.append("That kind of event does not exist, so every kind is shown.")
            event_type = None
        scoped = practice_id is not None
        date_from, date_to = day("from", "From"), day("to", "To", end=True)
        if date_from and date_to and date_from > date_to:
            problems.append("“From” is after “To”, so no event can match: the dates were left out.")
            date_from = date_to = None
        return cls(
            who=text("who", "Name or email"),
            practice_name="" if scoped else text("practice_name", "Practice"),
            user_id=integer("user"),
            practice_id=practice_id if scoped else integer("practice"),
            scoped=scoped,
            event_type=event_type or None,
            date_from=date_from,
            date_to=date_to,
            before=integer("before", limit=2**62),
            every_step=args.get("steps") == "all",
            problems=tuple(dict.fromkeys(problems)),
        )

    def args(self, **changes) -> dict:
        """The query string of this filter (with `changes`), for links and the pager."""
        values = {
            "who": self.who, "user": self.user_id,
            "practice_name": self.practice_name, "practice": None if self.scoped else self.practice_id,
            "event_type": self.event_type,
            "from": self.date_from.date().isoformat() if self.date_from else None,
            "to": self.date_to.date().isoformat() if self.date_to else None,
            "steps": "all" if self.every_step else None, "before": self.before,
        }
        values.update(changes)
        return {key: value for key, value in values.items() if value not in (None, "")}

    @property
    def folds(self) -> bool:
        return not self.every_step and self.event_type != PASSWORD_STEP


@dataclass(frozen=True)
class Person:
    name: str
    email: str


@dataclass(frozen=True)
class PasswordStep:
    """The password step folded under its Log In."""

    id: int
    occurred_at: datetime
    ip: str | None
    seal_seq: int | None
    label: str = labels.LABELS[PASSWORD_STEP]


@dataclass(frozen=True)
class EventRow:
    event: AuditEvent
    actor: Person | None
    subject: Person | None
    practice: str | None
    password_step: PasswordStep | None = None

    @property
    def detail(self) -> dict:
        try:
            value = json.loads(self.event.detail or "{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    @property
    def label(self) -> str:
        return labels.label(self.event.event_type, self.event.outcome, self.detail)

    @property
    def sentence(self) -> str:
        return labels.sentence(self.event.event_type, self.detail)

    @property
    def failed(self) -> bool:
        return self.event.outcome != "success"


@dataclass(frozen=True)
class CheckpointInfo:
    written_at: datetime
    seq: int


class EventPage(list):
    """A page of EventRows; `last_checkpoint` is the newest checkpoint written, or None."""

    last_checkpoint: CheckpointInfo | None = None


@dataclass
class AuditPage:
    """What the audit pages show: the filter as read, who and which practices it stands for, the
    rows, the next page and what was left out of the filter."""

    filters: AuditFilter
    rows: EventPage
    next_before: int | None
    people: list[Person] = field(default_factory=list)
    practices: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    @property
    def event_choices(self) -> list[tuple[str, str]]:
        return labels.choices()


_LAST = select(AuditCheckpoint.written_at, AuditCheckpoint.seq).order_by(AuditCheckpoint.id.desc()).limit(1)


def audit_page(args, *, practice_id: int | None = None, per_page: int = PER_PAGE) -> AuditPage:
    """The audit page for a query string; with `practice_id`, only that practice's events."""
    filters = AuditFilter.from_args(args, practice_id=practice_id)
    messages = list(filters.problems)
    user_ids = practice_ids = None
    people: list[Person] = []
    practices: list[str] = []
    if filters.who or filters.user_id:
        user_ids, people, note = _people(filters)
        messages += [note] if note else []
    if not filters.scoped and (filters.practice_name or filters.practice_id):
        practice_ids, practices, note = _practices(filters)
        messages += [note] if note else []
    rows, next_before = events(filters, user_ids=user_ids, practice_ids=practice_ids, per_page=per_page)
    return AuditPage(filters, rows, next_before, people, practices, messages)


def _people(filters: AuditFilter) -> tuple[list[int], list[Person], str | None]:
    """The ids the "Name or email" filter (or a link's user) stands for: one bounded query on users."""
    statement = select(User.id, User.display_name, User.email)
    if filters.scoped:
        # The admin's people and support staff, never another practice's.
        statement = statement.where(or_(User.practice_id == filters.practice_id, User.practice_id.is_(None)))
    if filters.user_id:
        found = db.session.execute(statement.where(User.id == filters.user_id)).all()
        if not found:
            return [], [], "No one matches that link, so no event is shown."
    else:
        exact = filters.who.lower()
        pattern = _like(filters.who)
        found = db.session.execute(
            statement.where(or_(User.email == exact, User.email.like(pattern, escape="\\"),
                                func.lower(User.display_name).like(pattern, escape="\\")))
            .order_by(case((User.email == exact, 0), else_=1), User.email)
            .limit(MATCH_LIMIT + 1)
        ).all()
        if found and found[0].email == exact:
            found = found[:1]
        if not found:
            where = " in your practice" if filters.scoped else ""
            return [], [], f"No one{where} has a name or email containing “{filters.who}”."
    note = None
    if len(found) > MATCH_LIMIT:
        found = found[:MATCH_LIMIT]
        note = (f"More than {MATCH_LIMIT} people match “{filters.who}”: events of the first {MATCH_LIMIT} "
                "by email are shown. Type more of the name or email to narrow it.")
    return [row.id for row in found], [Person(row.display_name, row.email) for row in found], note


def _practices(filters: AuditFilter) -> tuple[list[int], list[str], str | None]:
    """The ids the "Practice" filter (or a link's practice) stands for: one bounded query on practices."""
    if filters.practice_id:
        found = db.session.execute(select(Practice.id, Practice.name).where(Practice.id == filters.practice_id)).all()
        if not found:
            return [], [], "No practice matches that link, so no event is shown."
    else:
        exact = filters.practice_name.lower()
        found = db.session.execute(
            select(Practice.id, Practice.name)
            .where(func.lower(Practice.name).like(_like(filters.practice_name), escape="\\"))
            .order_by(case((func.lower(Practice.name) == exact, 0), else_=1), Practice.name)
            .limit(MATCH_LIMIT + 1)
        ).all()
        if found and found[0].name.lower() == exact:
            found = found[:1]
        if not found:
            return [], [], f"No practice has a name containing “{filters.practice_name}”."
    note = None
    if len(found) > MATCH_LIMIT:
        found = found[:MATCH_LIMIT]
        note = (f"More than {MATCH_LIMIT} practices match “{filters.practice_name}”: events of the first "
                f"{MATCH_LIMIT} by name are shown. Type more of the name to narrow it.")
    return [row.id for row in found], [row.name for row in found], note


def _partner(filters: AuditFilter, column, *, newer: bool):
    """The id, time and address of the nearest password step or Log In of the same user, before
    (or after, if `newer`) each row: one probe of the (subject, id) index per row shown."""
    other = db.aliased(AuditEvent)
    nearest = (
        select(column(other))
        .where(other.subject_id == AuditEvent.subject_id, other.event_type.in_((PASSWORD_STEP, LOGGED_IN)),
               other.id > AuditEvent.id if newer else other.id < AuditEvent.id)
        .order_by(other.id.asc() if newer else other.id.desc())
        .limit(1)
    )
    if filters.practice_id is not None and filters.scoped:
        nearest = nearest.where(other.practice_id == filters.practice_id)
    return nearest.correlate(AuditEvent).scalar_subquery()


def events(filters: AuditFilter, *, user_ids: list[int] | None = None, practice_ids: list[int] | None = None,
           per_page: int = PER_PAGE) -> tuple[EventPage, int | None]:
    """One page of events (one statement, which also reads the last checkpoint and, when steps
    are folded, the pairing of password steps and Log Ins) and the `before` id of the next page.

    `user_ids` and `practice_ids` are what the text filters resolved to (None: no such filter;
    empty: nothing matches).
    """
    actor = db.aliased(User)
    subject = db.aliased(User)
    last = _LAST.subquery()
    columns = [AuditEvent, actor.display_name, actor.email, subject.display_name, subject.email, Practice.name,
               select(last.c.written_at).scalar_subquery(), select(last.c.seq).scalar_subquery()]
    if filters.folds:
        is_step, is_login = AuditEvent.event_type == PASSWORD_STEP, AuditEvent.event_type == LOGGED_IN
        columns += [
            case((is_step, _partner(filters, lambda e: e.event_type, newer=True))),
            case((is_step, _partner(filters, lambda e: e.occurred_at, newer=True))),
            case((is_login, _partner(filters, lambda e: e.event_type, newer=False))),
            case((is_login, _partner(filters, lambda e: e.id, newer=False))),
            case((is_login, _partner(filters, lambda e: e.occurred_at, newer=False))),
            case((is_login, _partner(filters, lambda e: e.ip, newer=False))),
            case((is_login, _partner(filters, lambda e: e.seal_seq, newer=False))),
        ]
    statement = (
        select(*columns)
        .outerjoin(actor, actor.id == AuditEvent.actor_id)
        .outerjoin(subject, subject.id == AuditEvent.subject_id)
        .outerjoin(Practice, Practice.id == AuditEvent.practice_id)
    )
    if user_ids is not None:
        statement = statement.where(
            or_(AuditEvent.subject_id.in_(user_ids), AuditEvent.actor_id.in_(user_ids)) if user_ids else false())
    if filters.scoped:
        statement = statement.where(AuditEvent.practice_id == filters.practice_id)
    elif practice_ids is not None:
        statement = statement.where(AuditEvent.practice_id.in_(practice_ids) if practice_ids else false())
    if filters.event_type:
        statement = statement.where(AuditEvent.event_type == filters.event_type)
    if filters.date_from:
        statement = statement.where(AuditEvent.occurred_at >= filters.date_from)
    if filters.date_to:
        statement = statement.where(AuditEvent.occurred_at <= filters.date_to)
    if filters.before:
        statement = statement.where(AuditEvent.id < filters.before)
    rows = db.session.execute(statement.order_by(AuditEvent.id.desc()).limit(per_page + 1)).all()
    window = current_app.config["MFA_PENDING_LOGIN_TTL"]
    shown = (_row(values, window, filters.folds, filters.date_to) for values in rows[:per_page])
    page = EventPage(row for row in shown if row)
    if rows:
        written_at, seq = rows[0][6], rows[0][7]
    else:  # no row to carry it: ask once more
        written_at, seq = db.session.execute(_LAST).first() or (None, None)
    if written_at is not None:
        page.last_checkpoint = CheckpointInfo(written_at, seq)
    next_before = rows[per_page - 1][0].id if len(rows) > per_page else None
    return page, next_before


def _within(earlier: datetime | None, later: datetime | None, window: timedelta) -> bool:
    if earlier is None or later is None:
        return False
    return timedelta(0) <= _aware(later) - _aware(earlier) <= window


def _aware(moment: datetime) -> datetime:
    # The correlated lookups come back as the database stores them (naive UTC on SQLite).
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _row(values, window: timedelta, folds: bool, date_to: datetime | None) -> EventRow | None:
    """One row of the page, or None for a password step shown inside its Log In's row."""
    event, actor_name, actor_email, subject_name, subject_email, practice = values[:6]
    step = None
    if folds:
        next_type, next_at, previous_type, previous_id, previous_at, previous_ip, previous_seal = values[8:15]
        # Folded only when its Log In is shown too (not cut off by the "To" date).
        if next_type == LOGGED_IN and _within(event.occurred_at, next_at, window) and (
                date_to is None or _aware(next_at) <= date_to):
            return None
        if previous_type == PASSWORD_STEP and _within(previous_at, event.occurred_at, window):
            step = PasswordStep(previous_id, _aware(previous_at), previous_ip, previous_seal)
    return EventRow(event, Person(actor_name, actor_email) if actor_email else None,
                    Person(subject_name, subject_email) if subject_email else None, practice, step)
