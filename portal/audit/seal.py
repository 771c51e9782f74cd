"""Sealing the audit trail, off the request path, and writing signed checkpoints.

A request writes its audit event as a plain INSERT with the seal columns empty (`record()`).
The sealer, a task on the queue (`portal/tasks/jobs.py`: every `AUDIT_SEAL_SECONDS`), then
chains the committed rows:

- **Order.** Each pass takes the rows that are still unsealed, in id order, and gives them the
  next numbers of `seal_seq`. The chain follows `seal_seq`, not the id: a row that a slow
  transaction commits after rows with higher ids were sealed simply gets the next number when
  it becomes visible. Rolled-back rows never become visible, and gaps in the ids mean nothing.
- **MAC.** `seal_mac` = HMAC-SHA256 under the newest `AUDIT_KEYS` key over the row's content,
  its `seal_seq`, its key id, its seal time and the previous row's MAC (`GENESIS_MAC` for #1).
  The key id is stored in the row, so verification finds the key even after a rotation.
- **One sealer at a time.** A pass first locks the single `audit_seal_state` row: on
  PostgreSQL `SELECT ... FOR UPDATE SKIP LOCKED`, so a second sealer (another consumer) skips
  its pass instead of waiting; on SQLite the UPDATE that follows takes the database's write
  lock. The chain's head is read after the lock is taken, from the rows themselves.

A checkpoint (every `AUDIT_CHECKPOINT_SECONDS`) is one JSON line: the last sealed `seal_seq`,
its MAC, the count of sealed rows and the time, signed with HMAC-SHA256 under the newest key.
It goes to the log (logger `portal.audit.checkpoint`), is appended and fsync'ed to
`AUDIT_CHECKPOINT_PATH`, and a copy is kept in `audit_checkpoints` for the pages.
`portal.audit.verify` checks the chain and the checkpoints.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from datetime import datetime, timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Connection

from portal import clock
from portal.audit.keys import AuditKeys, current_keys
from portal.extensions import db
from portal.models.audit import AuditCheckpoint, AuditEvent, AuditSealState
from portal.models.base import UTCDateTime

logger = logging.getLogger("portal.audit.seal")
checkpoint_logger = logging.getLogger("portal.audit.checkpoint")

GENESIS_MAC = "0" * 64
ROW_FORMAT = "portal-audit-seal-v1"
CHECKPOINT_FORMAT = "portal-audit-checkpoint-v1"
CHECKPOINT_TYPE = "portal.audit.checkpoint"
BATCH = 500  # rows per transaction
PASS_LIMIT = 20 * BATCH  # rows per queued pass; `flask audit seal` has no limit

events = AuditEvent.__table__
_state = AuditSealState.__table__
_checkpoints = AuditCheckpoint.__table__

# What the MAC covers of a row, besides its seal: every column a request writes, and the
# old chain's hashes of rows written before the keyed seal existed.
CONTENT_COLUMNS = ("id", "occurred_at", "event_type", "outcome", "actor_id", "subject_id", "practice_id", "ip",
                   "user_agent", "request_id", "detail", "prev_hash", "row_hash")


def _plain(value):
    return value.isoformat() if isinstance(value, datetime) else value


def row_mac(key: bytes, *, prev_mac: str, seq: int, key_id: str, sealed_at: datetime, row) -> str:
    """The MAC of one sealed row (`row`: anything with the CONTENT_COLUMNS as attributes)."""
    content = [_plain(getattr(row, name)) for name in CONTENT_COLUMNS]
    message = json.dumps([ROW_FORMAT, seq, key_id, _plain(sealed_at), prev_mac, content], separators=(",", ":"))
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


# -- sealing ---------------------------------------------------------------------------------

_HEAD = (select(events.c.seal_seq, events.c.seal_mac).where(events.c.seal_seq.is_not(None))
         .order_by(events.c.seal_seq.desc()).limit(1))
_SEAL = (
    update(events)
    .where(events.c.id == bindparam("_id"), events.c.seal_seq.is_(None))
    .values(seal_seq=bindparam("_seq"), seal_mac=bindparam("_mac"), seal_key_id=bindparam("_key_id"),
            sealed_at=bindparam("_sealed_at", type_=UTCDateTime()))
)


def _insert_state_row(connection: Connection):
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(_state).values(id=1, passes=0).on_conflict_do_nothing(index_elements=["id"])


def take_lock(connection: Connection, now: datetime) -> bool:
    """Lock the seal state for this transaction; False if another sealer holds it (PostgreSQL)."""
    connection.execute(_insert_state_row(connection))
    if connection.dialect.name == "postgresql":
        locked = connection.execute(
            select(_state.c.id).where(_state.c.id == 1).with_for_update(skip_locked=True)).first()
        if locked is None:
            return False
    connection.execute(update(_state).where(_state.c.id == 1).values(passes=_state.c.passes + 1, last_pass_at=now))
    return True


def head(connection: Connection) -> tuple[int, str]:
    """The last sealed row's (seal_seq, seal_mac), or (0, GENESIS_MAC)."""
    row = connection.execute(_HEAD).first()
    return (row.seal_seq, row.seal_mac) if row else (0, GENESIS_MAC)


def seal_batch(connection: Connection, keys: AuditKeys, now: datetime, limit: int = BATCH) -> int:
    """Seal up to `limit` unsealed rows, in id order, after the chain's head. The caller holds
    the lock (`take_lock`) and commits. Returns how many rows it sealed."""
    seq, prev_mac = head(connection)
    rows = connection.execute(
        select(events).where(events.c.seal_seq.is_(None)).order_by(events.c.id).limit(limit)).all()
    if not rows:
        return 0
    sealed_at = now.replace(microsecond=0)
    key_id, key = keys.current_id, keys.current
    params = []
    for row in rows:
        seq += 1
        prev_mac = row_mac(key, prev_mac=prev_mac, seq=seq, key_id=key_id, sealed_at=sealed_at, row=row)
        params.append({"_id": row.id, "_seq": seq, "_mac": prev_mac, "_key_id": key_id, "_sealed_at": sealed_at})
    connection.execute(_SEAL, params)
    return len(rows)


def seal_pending(*, limit: int | None = PASS_LIMIT, now: datetime | None = None) -> int:
    """One sealing pass: seal committed unsealed rows, `BATCH` per transaction, up to `limit`
    (None: until none is left). Safe on several consumers at once: a pass that finds another
    sealer at work returns at once. Returns how many rows this pass sealed."""
    keys = current_keys()
    total = 0
    try:
        while limit is None or total < limit:
            connection = db.session.connection()
            if not take_lock(connection, now or clock.now()):
                db.session.rollback()
                break
            sealed = seal_batch(connection, keys, now or clock.now(),
                                BATCH if limit is None else min(BATCH, limit - total))
            db.session.commit()
            total += sealed
            if sealed < BATCH:
                break
    except Exception:
        db.session.rollback()
        raise
    if total:
        logger.info("sealed %s audit event(s)", total)
    return total


# -- checkpoints -----------------------------------------------------------------------------


def sign_checkpoint(key: bytes, body: dict) -> str:
    unsigned = {name: value for name, value in body.items() if name != "sig"}
    message = CHECKPOINT_FORMAT + "|" + json.dumps(unsigned, separators=(",", ":"), sort_keys=True)
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def checkpoint_line(keys: AuditKeys, *, seq: int, mac: str, at: datetime,
                    extra: dict | None = None) -> tuple[dict, str]:
    """The signed checkpoint (body, and the JSON line written out)."""
    body = {"type": CHECKPOINT_TYPE, "v": 1, "seq": seq, "mac": mac, "count": seq,
            "at": at.replace(microsecond=0).isoformat(), "key_id": keys.current_id, **(extra or {})}
    body["sig"] = sign_checkpoint(keys.current, body)
    return body, json.dumps(body, separators=(",", ":"), sort_keys=True)


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line to the checkpoint file and fsync it (created 0640 if missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(connection: Connection, body: dict, line: str, *, path: str | os.PathLike) -> None:
    """Keep a copy in the database (in the caller's transaction), then log and append the line."""
    connection.execute(insert(_checkpoints).values(
        written_at=datetime.fromisoformat(body["at"]), seq=body["seq"], mac=body["mac"], key_id=body["key_id"],
        line=line))
    checkpoint_logger.info(line)
    append_line(path, line)


def _interval() -> timedelta:
    return timedelta(seconds=current_app.config["AUDIT_CHECKPOINT_SECONDS"])


def write_checkpoint(*, force: bool = False, now: datetime | None = None) -> dict | None:
    """Write a checkpoint if one is due (the last is `AUDIT_CHECKPOINT_SECONDS` old, less half
    a minute for the per-minute schedule), or always with `force`. Taken under the seal lock,
    so it names a head that no sealer is extending and two consumers never both write one.
    Returns the checkpoint written, or None."""
    now = now or clock.now()
    keys = current_keys()
    try:
        connection = db.session.connection()
        if not take_lock(connection, now):
            db.session.rollback()
            return None
        if not force:
            last = connection.execute(select(func.max(_checkpoints.c.written_at))).scalar()
            interval = _interval()
            if last is not None and now - last < interval - min(timedelta(seconds=30), interval / 2):
                db.session.rollback()
                return None
        seq, mac = head(connection)
        body, line = checkpoint_line(keys, seq=seq, mac=mac, at=now)
        publish(connection, body, line, path=current_app.config["AUDIT_CHECKPOINT_PATH"])
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return body


def last_checkpoint() -> AuditCheckpoint | None:
    return db.session.scalar(select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(1))
