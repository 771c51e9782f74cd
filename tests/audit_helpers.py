"""Helpers of the audit trail tests: tampering as an attacker with database access would,
sealing, and reading the chain."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from flask import current_app
from sqlalchemy import select, text

from portal import audit
from portal.audit import seal
from portal.extensions import db
from portal.models import AuditEvent


def is_postgres() -> bool:
    return db.engine.dialect.name == "postgresql"


def tamper(sql: str, **params) -> None:
    """Change the table by hand, as an attacker with database access would: on PostgreSQL as
    the superuser who may switch the append-only triggers off for the change."""
    with db.engine.begin() as connection:
        postgres = connection.dialect.name == "postgresql"
        for table in ("audit_events", "audit_checkpoints") if postgres else ():
            connection.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
        connection.execute(text(sql), params)
        for table in ("audit_events", "audit_checkpoints") if postgres else ():
            connection.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
    db.session.expire_all()


def record_some(user, n: int = 5, event_type: str = "logout") -> None:
    for i in range(n):
        audit.record(event_type, actor=user, subject=user, detail={"i": i})
    db.session.commit()


def seal_all() -> int:
    return seal.seal_pending(limit=None)


_events = AuditEvent.__table__


def _snapshot(statement) -> list[SimpleNamespace]:
    """Plain copies of rows (never ORM objects: a changed attribute would be flushed)."""
    db.session.expire_all()
    rows = [SimpleNamespace(**row._mapping) for row in db.session.execute(statement)]
    db.session.rollback()
    return rows


def sealed_rows() -> list[SimpleNamespace]:
    return _snapshot(select(_events).where(_events.c.seal_seq.is_not(None)).order_by(_events.c.seal_seq))


def all_rows() -> list[SimpleNamespace]:
    return _snapshot(select(_events).order_by(_events.c.id))


def use_checkpoint_file(path: Path, *apps) -> Path:
    """Point AUDIT_CHECKPOINT_PATH of the test's context app (and `apps`) at `path`."""
    current_app.config["AUDIT_CHECKPOINT_PATH"] = str(path)
    for other in apps:
        other.config["AUDIT_CHECKPOINT_PATH"] = str(path)
    return path


def forge_from(position: int, *, key: bytes, key_id: str | None = None, detail: str | None = None) -> int:
    """Rewrite the sealed row at `position` (0-based, seal order) and recompute every later MAC
    with the portal's own function under `key` (a key of the attacker's own), keeping or
    replacing the key id. Returns the id of the first rewritten row."""
    rows = sealed_rows()
    previous = rows[position - 1].seal_mac if position else seal.GENESIS_MAC
    first = rows[position].id
    for number, row in enumerate(rows[position:]):
        if number == 0 and detail is not None:
            row.detail = detail
        row.seal_key_id = key_id or row.seal_key_id
        row.seal_mac = seal.row_mac(key, prev_mac=previous, seq=row.seal_seq, key_id=row.seal_key_id,
                                    sealed_at=row.sealed_at, row=row)
        tamper("UPDATE audit_events SET detail = :detail, seal_key_id = :key_id, seal_mac = :mac WHERE id = :id",
               detail=row.detail, key_id=row.seal_key_id, mac=row.seal_mac, id=row.id)
        previous = row.seal_mac
    return first
