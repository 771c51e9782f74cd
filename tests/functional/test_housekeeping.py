"""House-keeping (portal/housekeeping.py): does each job remove exactly what has expired, and
nothing else, in batches, even with several consumers running it at once?

Every test builds rows on both sides of each boundary (a second before, at, and a second after
the cut-off), runs the job with the test's `now` and compares the ids that remain.
"""

from __future__ import annotations

import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from flask import current_app
from sqlalchemy import event, func, select

from portal import audit, housekeeping
from portal.extensions import db
from portal.models import (
    AuditEvent,
    Invitation,
    MfaCode,
    MfaPendingEnrollment,
    OutboxMessage,
    PasswordReset,
    ServerSession,
)
from tests.factories import make_practice, make_user

SECOND = timedelta(seconds=1)


def saved(*rows) -> list[int]:
    """Commit the rows; return their ids in order."""
    db.session.add_all(rows)
    db.session.commit()
    return [row.id for row in rows]


def remaining(model) -> set[int]:
    db.session.expire_all()
    return set(db.session.scalars(select(model.id)))


def code(user, created_at, *, expires_at=None, consumed_at=None, voided_at=None) -> MfaCode:
    return MfaCode(user_id=user.id, purpose="login", channel="sms", destination_hash="d" * 64,
                   challenge=secrets.token_hex(16), code_hmac="h" * 64, created_at=created_at,
                   expires_at=expires_at or created_at + current_app.config["MFA_CODE_TTL"],
                   consumed_at=consumed_at, voided_at=voided_at)


def pending_setup(expires_at) -> MfaPendingEnrollment:
    # One pending set-up per user (a unique key), so each gets its own user.
    return MfaPendingEnrollment(user_id=make_user().id, method="email", created_at=expires_at - timedelta(minutes=10),
                                expires_at=expires_at)


def session_row(expiry) -> ServerSession:
    return ServerSession(session_id=secrets.token_hex(16), data=b"{}", expiry=expiry)


def invitation(admin, *, created_at, expires_at, accepted_at=None, revoked_at=None) -> Invitation:
    return Invitation(practice_id=admin.practice_id, email=f"{secrets.token_hex(4)}@example.test", display_name="New",
                      role="clinician", invited_by_id=admin.id, nonce_hash="n" * 64, created_at=created_at,
                      expires_at=expires_at, accepted_at=accepted_at, revoked_at=revoked_at)


def reset(user, *, created_at, expires_at, used_at=None) -> PasswordReset:
    return PasswordReset(user_id=user.id, nonce_hash="n" * 64, created_at=created_at, expires_at=expires_at,
                         used_at=used_at)


def message(created_at) -> OutboxMessage:
    return OutboxMessage(created_at=created_at, channel="email", recipient="someone@example.test", subject="Hello",
                         body_text="Hello")


def test_used_and_expired_codes_go_after_the_retention_window(app, clock):
    """Are used, voided and expired codes older than the window removed, and younger ones kept?"""
    now = clock.now()
    user = make_user()
    cutoff = now - timedelta(days=30)
    old = cutoff - SECOND
    gone = saved(
        code(user, old, consumed_at=old + SECOND),
        code(user, old, voided_at=now - timedelta(days=2)),
        code(user, old),  # expired unused
        code(user, cutoff, consumed_at=cutoff + SECOND),  # exactly the window old
    )
    young = cutoff + SECOND
    kept = saved(
        code(user, young, consumed_at=young + SECOND),
        code(user, young, voided_at=young + SECOND),
        code(user, now - timedelta(days=1)),  # expired, counted by the daily send limits
        code(user, now - timedelta(minutes=1)),  # live
    )
    assert housekeeping.remove_old_codes(now=now) == len(gone)
    assert remaining(MfaCode) == set(kept)


def test_live_codes_are_kept_whatever_their_age(app, clock):
    """Are live codes kept, even one sent longer ago than the retention window?"""
    now = clock.now()
    user = make_user()
    old = now - timedelta(days=31)
    kept = saved(code(user, old, expires_at=now + SECOND), code(user, now, expires_at=now + timedelta(minutes=5)))
    gone = saved(code(user, old, expires_at=now))  # expired at this very moment
    assert housekeeping.remove_old_codes(now=now) == len(gone)
    assert remaining(MfaCode) == set(kept)


def test_code_retention_never_drops_below_the_send_limits_window(app, clock, monkeypatch):
    """Is a retention shorter than a day plus a code's life raised to that, so the daily send
    limits still count every code they read?"""
    monkeypatch.setitem(current_app.config, "HOUSEKEEPING_CODE_RETENTION", timedelta(0))
    ttl = current_app.config["MFA_CODE_TTL"]
    assert housekeeping.code_retention() == timedelta(days=1) + ttl
    now = clock.now()
    user = make_user()
    floor = now - timedelta(days=1) - ttl
    gone = saved(code(user, floor - SECOND), code(user, floor, consumed_at=floor + SECOND))
    kept = saved(code(user, floor + SECOND), code(user, now - timedelta(hours=1), consumed_at=now - timedelta(hours=1)))
    assert housekeeping.remove_old_codes(now=now) == len(gone)
    assert remaining(MfaCode) == set(kept)


def test_expired_pending_setups_go(app, clock):
    """Are pending set-ups removed once their time is over, and the ones still running kept?"""
    now = clock.now()
    gone = saved(pending_setup(now - timedelta(days=1)), pending_setup(now - SECOND), pending_setup(now))
    kept = saved(pending_setup(now + SECOND), pending_setup(now + timedelta(minutes=10)))
    assert housekeeping.remove_expired_setups(now=now) == len(gone)
    assert remaining(MfaPendingEnrollment) == set(kept)


def test_expired_session_rows_go(app, clock):
    """Are expired session rows (pending Log Ins live in them) removed, and live ones kept?"""
    now = clock.now()
    gone = saved(session_row(now - timedelta(days=3)), session_row(now - SECOND), session_row(now))
    kept = saved(session_row(now + SECOND), session_row(now + timedelta(hours=12)))
    assert housekeeping.remove_expired_sessions(now=now) == len(gone)
    assert remaining(ServerSession) == set(kept)


def test_spent_invitations_go_after_the_retention_window(app, clock):
    """Are invitations that expired, were accepted or were revoked over a week ago removed, and
    recent or still usable ones kept?"""
    now = clock.now()
    admin = make_user(role="practice_admin", practice=make_practice())
    cutoff = now - timedelta(days=7)
    before, after = cutoff - SECOND, cutoff + SECOND
    lifetime = timedelta(hours=48)
    gone = saved(
        invitation(admin, created_at=before - lifetime, expires_at=before),
        invitation(admin, created_at=cutoff - lifetime, expires_at=cutoff),
        invitation(admin, created_at=before - timedelta(hours=1), expires_at=after + lifetime, accepted_at=before),
        invitation(admin, created_at=before - timedelta(hours=1), expires_at=after + lifetime, revoked_at=before),
    )
    kept = saved(
        invitation(admin, created_at=after - lifetime, expires_at=after),  # expired within the window
        invitation(admin, created_at=before, expires_at=before + lifetime, accepted_at=after),
        invitation(admin, created_at=before, expires_at=before + lifetime, revoked_at=after),
        invitation(admin, created_at=now - timedelta(hours=1), expires_at=now + timedelta(hours=47)),  # usable
    )
    assert housekeeping.remove_old_invitations(now=now) == len(gone)
    assert remaining(Invitation) == set(kept)


def test_spent_password_resets_go_after_the_retention_window(app, clock):
    """Are password resets that expired or were used over a week ago removed, and recent or
    still usable ones kept?"""
    now = clock.now()
    user = make_user()
    cutoff = now - timedelta(days=7)
    before, after = cutoff - SECOND, cutoff + SECOND
    hour = timedelta(hours=1)
    gone = saved(
        reset(user, created_at=before - hour, expires_at=before),
        reset(user, created_at=cutoff - hour, expires_at=cutoff),
        reset(user, created_at=before - timedelta(minutes=30), expires_at=before + timedelta(minutes=30),
              used_at=before),
    )
    kept = saved(
        reset(user, created_at=after - hour, expires_at=after),  # expired within the window
        reset(user, created_at=before - timedelta(minutes=30), expires_at=before + timedelta(minutes=30),
              used_at=after),
        reset(user, created_at=now - timedelta(minutes=5), expires_at=now + timedelta(minutes=55)),  # usable
    )
    assert housekeeping.remove_old_password_resets(now=now) == len(gone)
    assert remaining(PasswordReset) == set(kept)


def test_dev_outbox_messages_go_after_a_week(app, clock):
    """Are dev outbox messages older than a week removed, and newer ones kept?"""
    now = clock.now()
    cutoff = now - timedelta(days=7)
    gone = saved(message(cutoff - timedelta(days=30)), message(cutoff - SECOND), message(cutoff))
    kept = saved(message(cutoff + SECOND), message(now))
    assert housekeeping.remove_old_outbox_messages(now=now) == len(gone)
    assert remaining(OutboxMessage) == set(kept)


def test_run_all_works_in_batches_and_reports_each_job(app, clock, monkeypatch, caplog):
    """With a batch size of 2, does run_all remove seven expired rows of each kind in four
    statements per table, keep the rest and the audit trail, and log one line per job?"""
    monkeypatch.setitem(current_app.config, "HOUSEKEEPING_BATCH_SIZE", 2)
    now = clock.now()
    admin = make_user(role="practice_admin", practice=make_practice())
    audit.record("invitation.sent", actor=admin, now=now - timedelta(days=60), commit=True)
    audit_events = db.session.scalar(select(func.count(AuditEvent.id)))
    old = now - timedelta(days=60)
    expired = {
        MfaCode: saved(*[code(admin, old) for _ in range(7)]),
        MfaPendingEnrollment: saved(*[pending_setup(now - SECOND) for _ in range(7)]),
        ServerSession: saved(*[session_row(now - SECOND) for _ in range(7)]),
        Invitation: saved(*[invitation(admin, created_at=old, expires_at=old + timedelta(hours=48))
                            for _ in range(7)]),
        PasswordReset: saved(*[reset(admin, created_at=old, expires_at=old + timedelta(hours=1)) for _ in range(7)]),
        OutboxMessage: saved(*[message(old) for _ in range(7)]),
    }
    live = {
        MfaCode: saved(code(admin, now)),
        MfaPendingEnrollment: saved(pending_setup(now + timedelta(minutes=5))),
        ServerSession: saved(session_row(now + timedelta(hours=1))),
        Invitation: saved(invitation(admin, created_at=now, expires_at=now + timedelta(hours=48))),
        PasswordReset: saved(reset(admin, created_at=now, expires_at=now + timedelta(hours=1))),
        OutboxMessage: saved(message(now)),
    }
    deletes = []

    def count_deletes(connection, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("DELETE"):
            deletes.append(statement.split()[2])

    event.listen(db.engine, "before_cursor_execute", count_deletes)
    try:
        with caplog.at_level("INFO"):
            removed = housekeeping.run_all(now=now)
    finally:
        event.remove(db.engine, "before_cursor_execute", count_deletes)

    assert removed == {"codes": 7, "setups": 7, "sessions": 7, "invitations": 7, "password_resets": 7,
                       "outbox_messages": 7}
    for model in expired:
        assert remaining(model) == set(live[model]), model.__name__
        assert deletes.count(model.__tablename__) == 4, model.__name__  # 2 + 2 + 2 + 1
    assert db.session.scalar(select(func.count(AuditEvent.id))) == audit_events
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("house-keeping: removed")]
    assert len(lines) == len(housekeeping.JOBS)
    assert "house-keeping: removed 7 used or expired MFA codes" in lines


def test_a_batch_size_below_one_is_refused(app, clock):
    """Is a batch size of zero refused rather than looping for ever?"""
    with pytest.raises(ValueError):
        housekeeping.remove_expired_sessions(now=clock.now(), batch_size=0)


def test_four_consumers_at_once_remove_each_row_once(app, clock):
    """With four consumers running the same job at once, is every expired row removed exactly
    once (the counts add up), every live row kept, and no consumer failing?"""
    now = clock.now()
    user = make_user()
    old = now - timedelta(days=60)
    expired = saved(*[code(user, old, consumed_at=old + SECOND) for _ in range(60)])
    kept = saved(*[code(user, now - timedelta(minutes=1)) for _ in range(5)])
    threads = 4
    barrier = threading.Barrier(threads)

    def consumer(_):
        with app.app_context():  # the server app: its own context, session and connection
            barrier.wait(timeout=30)
            try:
                return housekeeping.remove_old_codes(now=now, batch_size=3)
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(consumer, i) for i in range(threads)]
        errors = [f.exception(timeout=60) for f in futures]
    assert errors == [None] * threads
    assert sum(f.result() for f in futures) == len(expired)
    assert remaining(MfaCode) == set(kept)
