"""The audit trail: record security events; seal and verify them (`seal`, `verify`).

Recording is a plain INSERT on the request's own connection, committed with the request's
transaction: no lock shared between users and no read of the chain's head, so sign-ins on any
number of instances never wait on each other for it. The events a transaction records are
written together, in one multi-row INSERT just before it commits (a Log In records two: one
round trip, not two, on the hottest requests); a transaction rolled back or closed without a
commit drops them. Rows start unsealed; the sealer (a queue
task, `portal.audit.seal`) chains and MACs them under `AUDIT_KEYS` within seconds, and writes
signed checkpoints outside the database. On PostgreSQL a trigger refuses UPDATE (except the
sealer filling the empty seal columns once), DELETE and TRUNCATE. Never record codes, secrets,
passwords, session ids or full phone numbers: callers pass masked destinations only.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from types import SimpleNamespace

from flask import g, has_request_context, request
from sqlalchemy import event as orm_event
from sqlalchemy import insert

from portal import clock
from portal.extensions import db
from portal.models.audit import AuditEvent

GENESIS = "0" * 64

EVENT_TYPES = (
    "login.password_succeeded", "login.password_failed", "login.succeeded", "login.locked",
    "logout.everywhere", "session.expired", "reauth.failed", "reauth.succeeded",
    "mfa.code_sent", "mfa.code_send_failed", "mfa.code_resent", "mfa.code_verified", "mfa.code_failed",
    "mfa.locked", "mfa.enrolled", "mfa.switched", "mfa.cleared",
    "practice.requirement_changed", "practice.request_made", "practice.request_decided",
    "invitation.sent", "invitation.accepted", "invitation.resent", "invitation.revoked",
    "password_reset.requested", "password_reset.completed",
    "logout", "support.confirmed", "mfa.lost_access_requested", "mfa.lost_access_decided",
    "support.unlocked",
)


def _content(event) -> str:
    return json.dumps(
        [
            event.occurred_at.isoformat(), event.event_type, event.outcome, event.actor_id, event.subject_id,
            event.practice_id, event.ip, event.user_agent, event.request_id, event.detail,
        ],
        separators=(",", ":"),
        sort_keys=True,
    )


def row_hash(prev_hash: str, event) -> str:
    """The unkeyed SHA-256 link of rows written before migration 0012 (`prev_hash`/`row_hash`).
    Kept to check that old chain once, at the upgrade; it protects nothing on its own."""
    return hashlib.sha256((prev_hash + "|" + _content(event)).encode()).hexdigest()


# Run on the session's connection as a plain statement (the ORM has nothing to track for an
# append-only row).
_INSERT = insert(AuditEvent.__table__)
# Where a transaction's events wait for its commit (the ORM session's `info`).
_PENDING = "audit_events"


def record(event_type: str, *, outcome: str = "success", actor=None, subject=None, practice_id: int | None = None,
           detail: dict | None = None, now: datetime | None = None, commit: bool = False) -> None:
    """Add an event to the current transaction (committed with it, or now if `commit`),
    unsealed; the sealer seals it once it is committed. The transaction's events are written
    by one INSERT as it commits; a rolled-back transaction leaves no event behind.

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
    db.session.info.setdefault(_PENDING, []).append(vars(event))
    if commit:
        db.session.commit()


def _write_pending(orm_session) -> None:
    """Just before a commit: the transaction's own writes, then its events in one statement.

    Sent as one INSERT with many parameter sets rather than one multi-row VALUES: that
    statement is compiled once per process (a VALUES list is compiled again for every
    transaction); SQLite runs it as executemany, psycopg in one pipelined round trip."""
    events = orm_session.info.pop(_PENDING, None)
    if events:
        orm_session.flush()
        orm_session.connection().execute(_INSERT, events)


def _drop_pending(orm_session, *_args) -> None:
    """A rollback (or a transaction ended without a commit) takes its events with it."""
    orm_session.info.pop(_PENDING, None)


orm_event.listen(db.session, "before_commit", _write_pending)
orm_event.listen(db.session, "after_soft_rollback", _drop_pending)


def init_app(app) -> None:
    """Read AUDIT_KEYS (a malformed key stops the start). Give every request an id: it ties
    audit rows, logs and error pages together."""
    import secrets

    from portal.audit import keys

    keys.init_app(app)

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


def verify_chain(checkpoint_files=(), **options):
    """Check the trail: see `portal.audit.verify.verify` (returns its Report: `ok`, `checked`,
    `broken_id`, `reason`, `summary()`)."""
    from portal.audit.verify import verify

    return verify(checkpoint_files, **options)
