from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.models.base import UTCDateTime, clock_now

# Sealing needs both dialects' 64-bit ids; SQLite's INTEGER PRIMARY KEY is already 64-bit.
_BIGINT = BigInteger().with_variant(Integer, "sqlite")


class AuditChainLock(db.Model):
    """The lock row of the old hash chain (migration 0007). Unused since 0012, where writers
    stopped taking it; kept one release so instances of the previous version can still write
    their audit events during a rolling upgrade. Drop it in the release after."""

    __tablename__ = "audit_chain_lock"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    writes: Mapped[int] = mapped_column(_BIGINT, default=0)


class AuditEvent(db.Model):
    """One security event. Append-only, sealed later by the sealer: see `portal.audit.seal`.

    Actor, subject and practice are plain ids, not foreign keys, so the trail never changes
    when the rows it mentions do. A request inserts the row with the seal columns empty; the
    sealer fills them once (`seal_seq`: the row's place in the chain, which follows the order
    rows were sealed, not the id; `seal_mac`: HMAC-SHA256 over the row, its place, its key id,
    its seal time and the previous row's MAC; `seal_key_id`: which AUDIT_KEYS key). The
    PostgreSQL trigger allows exactly that one update. `prev_hash`/`row_hash` are the unkeyed
    chain of rows written before 0012 (empty on later rows), kept as evidence and sealed with them.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_practice_id_id", "practice_id", "id"),
        Index("ix_audit_events_subject_id_id", "subject_id", "id"),
        Index("ix_audit_events_actor_id_id", "actor_id", "id"),
        Index("ix_audit_events_event_type_id", "event_type", "id"),
        Index("uq_audit_events_seal_seq", "seal_seq", unique=True),
        # What the sealer looks for: small, since rows leave it within seconds.
        Index("ix_audit_events_unsealed", "id", postgresql_where=text("seal_seq IS NULL"),
              sqlite_where=text("seal_seq IS NULL")),
    )

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True)
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
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    row_hash: Mapped[str | None] = mapped_column(String(64))
    seal_seq: Mapped[int | None] = mapped_column(_BIGINT)
    seal_mac: Mapped[str | None] = mapped_column(String(64))
    seal_key_id: Mapped[str | None] = mapped_column(String(32))
    sealed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def sealed(self) -> bool:
        return self.seal_seq is not None


class AuditSealState(db.Model):
    """One row (id 1) that a sealer locks for its pass, so one sealer at a time extends the
    chain (PostgreSQL: `FOR UPDATE SKIP LOCKED`, a busy sealer is skipped; SQLite: the write
    lock). It holds no chain data: the head is read from `audit_events`, so nothing here can
    mislead `verify`. The sealer creates the row if it is missing."""

    __tablename__ = "audit_seal_state"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    passes: Mapped[int] = mapped_column(_BIGINT, default=0)
    last_pass_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditCheckpoint(db.Model):
    """A copy of each signed checkpoint, for the pages ("last checkpoint written") and the
    "is one due" check. The copies that count are the ones outside the database: the log line
    and `AUDIT_CHECKPOINT_PATH`. Append-only on PostgreSQL, like `audit_events`."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True)
    written_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    seq: Mapped[int] = mapped_column(_BIGINT)
    mac: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(32))
    line: Mapped[str] = mapped_column(Text)
