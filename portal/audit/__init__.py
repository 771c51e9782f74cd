"""The audit trail: record security events; verify the hash chain.

Every row carries SHA-256 over its content and the previous row's hash, so editing or
deleting a row breaks the chain from there on. On PostgreSQL a trigger also rejects UPDATE
and DELETE outright. Never record codes, secrets, passwords, session ids or full phone numbers:
callers pass masked destinations only.

Concurrency: writers serialise on the single `audit_chain_lock` row (updated first, held to
commit), so concurrent requests on any number of instances still build one chain.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace

from flask import g, has_request_context, request
from sqlalchemy import event as orm_events
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from portal import clock
from portal.extensions import db
from portal.models.audit import AuditChainLock, AuditEvent

GENESIS = "0" * 64

EVENT_TYPES = (
    "login.password_succeeded", "login.password_failed", "login.succeeded", "login.locked",
    "logout.everywhere", "session.expired", "reauth.failed", "reauth.succeeded",
    "mfa.code_sent", "mfa.code_send_failed", "mfa.code_resent", "mfa.code_verified", "mfa.code_failed",
    "mfa.locked", "mfa.enrolled", "mfa.switched", "mfa.cleared",
    "practice.requirement_changed", "practice.request_made", "practice.request_decided",
    "invitation.sent", "invitation.accepted", "password_reset.requested", "password_reset.completed",
    "logout", "support.confirmed", "mfa.lost_access_requested", "mfa.lost_access_decided",
    "support.unlocked",
)


def _content(event: AuditEvent) -> str:
    return json.dumps(
        [
            event.occurred_at.isoformat(), event.event_type, event.outcome, event.actor_id, event.subject_id,
            event.practice_id, event.ip, event.user_agent, event.request_id, event.detail,
        ],
        separators=(",", ":"),
        sort_keys=True,
    )


def row_hash(prev_hash: str, event: AuditEvent) -> str:
    return hashlib.sha256((prev_hash + "|" + _content(event)).encode()).hexdigest()


# Every audited request runs these: built once, and run on the session's connection as plain
# statements (the ORM has nothing to track for an append-only row).
_events = AuditEvent.__table__
_locks = AuditChainLock.__table__
_TAKE_LOCK = update(_locks).where(_locks.c.id == 1).values(writes=_locks.c.writes + 1)
_LATEST = select(_events.c.row_hash).order_by(_events.c.id.desc()).limit(1)
_INSERT = insert(_events)
# The chain head as this transaction left it, while it holds the lock (session.info key).
_HEAD = "audit_chain_head"


def _latest_hash(connection) -> str:
    """The hash to link to, read only after taking the chain lock (released at commit).

    The lock is held until the transaction ends, so a transaction's second event links to its
    first without asking again; any end of a transaction (commit, rollback, savepoint) forgets it.
    """
    head = db.session.info.get(_HEAD)
    if head is not None:
        return head
    if not connection.execute(_TAKE_LOCK).rowcount:
        raise RuntimeError("audit_chain_lock has no row; run `flask db upgrade`")
    return connection.execute(_LATEST).scalar() or GENESIS


@orm_events.listens_for(Session, "after_transaction_end")
def _forget_head(session, transaction) -> None:
    if transaction.parent is None or transaction.nested:  # not the short inner ones of a flush
        session.info.pop(_HEAD, None)


def record(event_type: str, *, outcome: str = "success", actor=None, subject=None, practice_id: int | None = None,
           detail: dict | None = None, now: datetime | None = None, commit: bool = False) -> None:
    """Add an event to the current transaction (committed with it, or now if `commit`).

    `actor` and `subject` are users (or None); the practice defaults to the subject's.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"Unknown audit event type {event_type!r}")
    if practice_id is None:
        practice_id = getattr(subject, "practice_id", None) or getattr(actor, "practice_id", None)
    event = SimpleNamespace(
        occurred_at=now or clock.now(),
        event_type=event_type,
        outcome=outcome,
        actor_id=getattr(actor, "id", None),
        subject_id=getattr(subject, "id", None),
        practice_id=practice_id,
        detail=json.dumps(detail or {}, separators=(",", ":"), sort_keys=True),
        **_request_facts(),
    )
    db.session.flush()  # what the transaction has pending is written before the event that follows it
    connection = db.session.connection()
    event.prev_hash = _latest_hash(connection)
    event.row_hash = row_hash(event.prev_hash, event)
    connection.execute(_INSERT, vars(event))
    db.session.info[_HEAD] = event.row_hash
    if commit:
        db.session.commit()


def init_app(app) -> None:
    """Give every request an id: it ties audit rows, logs and error pages together."""
    import secrets

    def assign_request_id():
        g.request_id = secrets.token_hex(8)

    # First of all hooks: a request the login gate turns away still has its id in the logs.
    app.before_request_funcs.setdefault(None, []).insert(0, assign_request_id)

    @app.after_request
    def expose_request_id(response):
        if "request_id" in g:
            response.headers["X-Request-ID"] = g.request_id
        return response


def _request_facts() -> dict:
    if not has_request_context():
        return {"ip": None, "user_agent": None, "request_id": None}
    return {
        "ip": (request.remote_addr or "")[:45] or None,
        "user_agent": (request.user_agent.string or "")[:300] or None,
        "request_id": getattr(g, "request_id", None),
    }


@dataclass
class ChainReport:
    checked: int
    broken_id: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_id is None


def verify_chain(batch: int = 5000) -> ChainReport:
    """Walk the trail in id order; report the first row whose hash or link is wrong."""
    previous = GENESIS
    checked = 0
    last_id = 0
    while True:
        rows = db.session.scalars(
            select(AuditEvent).where(AuditEvent.id > last_id).order_by(AuditEvent.id).limit(batch)
        ).all()
        if not rows:
            return ChainReport(checked)
        for event in rows:
            if event.prev_hash != previous:
                return ChainReport(checked, event.id, "its link to the previous row is broken "
                                   "(a row before it was removed or changed)")
            if event.row_hash != row_hash(event.prev_hash, event):
                return ChainReport(checked, event.id, "its content does not match its hash (the row was edited)")
            previous = event.row_hash
            checked += 1
            last_id = event.id
        db.session.expunge_all()
