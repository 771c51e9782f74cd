"""Reading the audit trail: filtered, newest first, paged by id (keyset) so deep pages stay fast.

Each row says whether it is sealed; the page says when the last checkpoint was written (read
in the same statement as the rows)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, time

from sqlalchemy import select

from portal.audit import EVENT_TYPES
from portal.extensions import db
from portal.models import AuditEvent, Practice, User
from portal.models.audit import AuditCheckpoint

PER_PAGE = 50


@dataclass(frozen=True)
class AuditFilter:
    user_id: int | None = None
    practice_id: int | None = None
    event_type: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    before: int | None = None

    @classmethod
    def from_args(cls, args, *, practice_id: int | None = None) -> AuditFilter:
        """Read filters from a query string; unparseable values are ignored, never a 500."""
        def integer(name, limit=2**31):
            # Ids of users and practices are 32-bit; event ids are 64-bit.
            try:
                value = int(args.get(name, ""))
                return value if 0 < value < limit else None
            except ValueError:
                return None

        def day(name, end=False):
            try:
                parsed = datetime.strptime(args.get(name, ""), "%Y-%m-%d").date()
            except ValueError:
                return None
            return datetime.combine(parsed, time.max if end else time.min, tzinfo=UTC)

        event_type = args.get("event_type")
        return cls(
            user_id=integer("user"),
            practice_id=practice_id if practice_id is not None else integer("practice"),
            event_type=event_type if event_type in EVENT_TYPES else None,
            date_from=day("from"),
            date_to=day("to", end=True),
            before=integer("before", limit=2**62),
        )

    def args(self, **changes) -> dict:
        values = {
            "user": self.user_id, "practice": self.practice_id, "event_type": self.event_type,
            "from": self.date_from.date().isoformat() if self.date_from else None,
            "to": self.date_to.date().isoformat() if self.date_to else None, "before": self.before,
        }
        values.update(changes)
        return {key: value for key, value in values.items() if value not in (None, "")}


@dataclass(frozen=True)
class EventRow:
    event: AuditEvent
    actor: str | None
    subject: str | None
    practice: str | None

    @property
    def detail(self) -> dict:
        return json.loads(self.event.detail or "{}")


@dataclass(frozen=True)
class CheckpointInfo:
    written_at: datetime
    seq: int


class EventPage(list):
    """A page of EventRows; `last_checkpoint` is the newest checkpoint written, or None."""

    last_checkpoint: CheckpointInfo | None = None


_LAST = select(AuditCheckpoint.written_at, AuditCheckpoint.seq).order_by(AuditCheckpoint.id.desc()).limit(1)


def events(filters: AuditFilter, per_page: int = PER_PAGE) -> tuple[EventPage, int | None]:
    """One page of events (one query, which also reads the last checkpoint) and the `before`
    id of the next page, if any."""
    actor = db.aliased(User)
    subject = db.aliased(User)
    last = _LAST.subquery()
    statement = (
        select(AuditEvent, actor.email, subject.email, Practice.name,
               select(last.c.written_at).scalar_subquery(), select(last.c.seq).scalar_subquery())
        .outerjoin(actor, actor.id == AuditEvent.actor_id)
        .outerjoin(subject, subject.id == AuditEvent.subject_id)
        .outerjoin(Practice, Practice.id == AuditEvent.practice_id)
    )
    if filters.user_id is not None:
        statement = statement.where(
            (AuditEvent.subject_id == filters.user_id) | (AuditEvent.actor_id == filters.user_id))
    if filters.practice_id is not None:
        statement = statement.where(AuditEvent.practice_id == filters.practice_id)
    if filters.event_type:
        statement = statement.where(AuditEvent.event_type == filters.event_type)
    if filters.date_from:
        statement = statement.where(AuditEvent.occurred_at >= filters.date_from)
    if filters.date_to:
        statement = statement.where(AuditEvent.occurred_at <= filters.date_to)
    if filters.before:
        statement = statement.where(AuditEvent.id < filters.before)
    rows = db.session.execute(statement.order_by(AuditEvent.id.desc()).limit(per_page + 1)).all()
    page = EventPage(EventRow(event, actor_email, subject_email, practice_name)
                     for event, actor_email, subject_email, practice_name, _, _ in rows[:per_page])
    if rows:
        written_at, seq = rows[0][4], rows[0][5]
    else:  # no row to carry it: ask once more
        written_at, seq = db.session.execute(_LAST).first() or (None, None)
    if written_at is not None:
        page.last_checkpoint = CheckpointInfo(written_at, seq)
    next_before = page[-1].event.id if len(rows) > per_page else None
    return page, next_before
