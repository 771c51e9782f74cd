"""The audit trail: what is recorded, the hash chain, and the append-only table."""

import json
import re

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from portal import audit
from portal.extensions import db
from portal.models import AuditEvent
from tests.factories import PASSWORD, make_enrollment, make_user


def is_postgres():
    return db.engine.dialect.name == "postgresql"


def tamper(sql: str, **params) -> None:
    """Edit the table by hand, as an attacker with database access would."""
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
        connection.execute(text(sql), params)
        if connection.dialect.name == "postgresql":
            connection.execute(text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only"))


def record_some(user, n=5):
    for i in range(n):
        audit.record("logout", actor=user, subject=user, detail={"i": i})
    db.session.commit()


def test_chain_verifies_and_cli_says_so(app, runner):
    user = make_user()
    record_some(user)
    assert audit.verify_chain().ok
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0 and "5 events verified" in result.output


def test_editing_a_row_breaks_the_chain_at_that_row(app, runner):
    """If someone edits an event by hand, does `flask audit verify` fail and name that row?"""
    user = make_user()
    record_some(user)
    ids = db.session.scalars(select(AuditEvent.id).order_by(AuditEvent.id)).all()
    tamper("UPDATE audit_events SET outcome = 'failure' WHERE id = :id", id=ids[2])
    db.session.expire_all()
    report = audit.verify_chain()
    assert not report.ok and report.broken_id == ids[2] and report.checked == 2
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code != 0
    assert f"event id {ids[2]}" in result.output


def test_deleting_a_row_breaks_the_chain_at_the_next_row(app, runner):
    user = make_user()
    record_some(user)
    ids = db.session.scalars(select(AuditEvent.id).order_by(AuditEvent.id)).all()
    tamper("DELETE FROM audit_events WHERE id = :id", id=ids[1])
    db.session.expire_all()
    report = audit.verify_chain()
    assert report.broken_id == ids[2]
    assert "link" in report.reason


def test_rewriting_a_row_and_its_hash_is_still_caught(app):
    """Recomputing the edited row's own hash breaks the link of the row after it."""
    user = make_user()
    record_some(user)
    rows = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    target = rows[1]
    target.detail = json.dumps({"i": 99})
    new_hash = audit.row_hash(target.prev_hash, target)
    db.session.rollback()
    tamper("UPDATE audit_events SET detail = :detail, row_hash = :hash WHERE id = :id",
           detail=json.dumps({"i": 99}), hash=new_hash, id=rows[1].id)
    db.session.expire_all()
    assert audit.verify_chain().broken_id == rows[2].id


def test_postgres_rejects_update_and_delete(app):
    """Does the database itself refuse to change or remove audit rows?"""
    if not is_postgres():
        pytest.skip("the append-only trigger exists on PostgreSQL (CI's second pass)")
    user = make_user()
    record_some(user, 1)
    for statement in ("UPDATE audit_events SET outcome = 'x'", "DELETE FROM audit_events"):
        with pytest.raises(DBAPIError, match="append-only"):
            with db.engine.begin() as connection:
                connection.execute(text(statement))


def test_flows_are_recorded_with_who_what_where(app, client, auth, outbox, clock):
    """Are password, code and enrollment events recorded with time, actor, address and agent?"""
    user = make_user("audited@example.test")
    make_enrollment(user, "sms", phone="+12025550143")
    auth.login("audited@example.test", "wrong password!!", headers={"User-Agent": "ClinicBrowser/1.0"})
    auth.login("audited@example.test", PASSWORD, headers={"User-Agent": "ClinicBrowser/1.0"})
    body = outbox.last("+12025550143", "sms").body_text
    code = re.search(r"\b(\d{6})\b", body).group(1)
    auth.enter_code("000000" if code != "000000" else "111111")
    auth.enter_code(code)
    events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    types = [event.event_type for event in events]
    assert types == ["login.password_failed", "login.password_succeeded", "mfa.code_sent", "mfa.code_failed",
                     "mfa.code_verified", "login.succeeded"]
    for event in events:
        assert event.subject_id == user.id and event.practice_id == user.practice_id
        assert event.ip == "127.0.0.1" and event.request_id
        assert event.occurred_at.tzinfo is not None
    assert events[0].outcome == "failure" and events[0].user_agent == "ClinicBrowser/1.0"
    sent = json.loads(events[2].detail)
    assert sent == {"channel": "sms", "destination": "(***) ***-0143", "purpose": "login"}


def test_no_code_secret_password_or_phone_in_the_trail(app, client, auth, outbox, clock):
    """Does any audit row contain a code, a password, a TOTP secret or a full phone number?"""
    user = make_user("secretive@example.test")
    auth.login("secretive@example.test", PASSWORD)
    client.post("/account/security/confirm-password", data={"password": PASSWORD})
    client.post("/account/security/phone", data={"phone": "(202) 555-0143"})
    code = re.search(r"\b(\d{6})\b", outbox.last("+12025550143", "sms").body_text).group(1)
    client.post("/account/security/verify", data={"code": code})
    client.post("/account/security/confirm-password", data={"password": PASSWORD})
    client.post("/account/security/device", data={"device": "totp"})
    page = client.get("/account/security?device=totp&step=totp_qr").get_data(as_text=True)
    key = re.search(r'id="manual-key">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    dump = " ".join(
        " ".join(str(value) for value in (e.detail, e.user_agent, e.ip, e.event_type))
        for e in db.session.scalars(select(AuditEvent))
    )
    assert "mfa.enrolled" in dump
    for secret in (code, PASSWORD, key, "+12025550143", "2025550143"):
        assert secret not in dump
    assert user.id


def test_unknown_event_types_are_refused(app):
    with pytest.raises(ValueError):
        audit.record("made.up")


def test_concurrent_writers_keep_one_chain(make_app, app):
    """Do parallel requests writing events still produce an unbroken chain?"""
    import threading
    from types import SimpleNamespace

    created = make_user()
    user = SimpleNamespace(id=created.id, practice_id=created.practice_id)
    writer = make_app()
    errors = []

    def write():
        try:
            with writer.app_context():
                for _ in range(10):
                    audit.record("logout", actor=user, subject=user, commit=True)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=write) for _ in range(4)]
    if not is_postgres():
        threads = threads[:1]  # SQLite is the single-writer development store
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    db.session.expire_all()
    report = audit.verify_chain()
    assert report.ok and report.checked == 10 * len(threads)


def test_invitation_reset_switch_and_lock_events_are_recorded(app, client, auth, outbox, clock):
    """Are invitations, resets, switches and code locks in the trail, each with actor and subject?"""
    admin = make_user("inviter@example.test", role="practice_admin")
    auth.login("inviter@example.test", PASSWORD)
    client.post("/practice/invitations",
                data={"email": "invitee@example.test", "display_name": "Invitee", "role": "staff"})
    auth.logout()
    link = outbox.link("invitee@example.test")
    client.post(link, data={"password": "invitee passphrase", "confirm": "invitee passphrase"})
    client.post("/forgot-password", data={"email": "invitee@example.test"})
    client.post(outbox.link("invitee@example.test"),
                data={"password": "second passphrase", "confirm": "second passphrase"})
    switcher = make_user("switch-audit@example.test")
    make_enrollment(switcher, "email")
    auth.login("switch-audit@example.test", PASSWORD)
    auth.enter_code(re.search(r"\b(\d{6})\b", outbox.last("switch-audit@example.test", "email").body_text).group(1))
    client.post("/account/security/confirm-password", data={"password": PASSWORD})
    client.post("/account/security/device", data={"device": "totp"})
    page = client.get("/account/security?device=totp&step=totp_qr").get_data(as_text=True)
    key = re.search(r'id="manual-key">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    import pyotp

    client.post("/account/security/verify", data={"code": pyotp.TOTP(key).at(clock.now())})
    auth.logout()
    auth.login("switch-audit@example.test", PASSWORD)
    for _ in range(10):
        auth.enter_code("000000")
    events = {e.event_type: e for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))}
    for kind in ("invitation.sent", "invitation.accepted", "password_reset.requested", "password_reset.completed",
                 "mfa.switched", "mfa.locked"):
        assert kind in events, kind
    assert events["invitation.sent"].actor_id == admin.id and events["invitation.sent"].practice_id == admin.practice_id
    assert events["mfa.switched"].subject_id == switcher.id
    assert json.loads(events["mfa.switched"].detail)["previous_method"] == "email"
    assert events["mfa.locked"].outcome == "failure"


def chain() -> list[tuple[str, str, str]]:
    db.session.expire_all()
    return [(row.event_type, row.prev_hash, row.row_hash)
            for row in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def test_events_of_one_transaction_link_to_each_other(app):
    """Do several events written in one transaction each link to the one before?"""
    user = make_user()
    audit.record("logout", actor=user, subject=user)
    audit.record("login.succeeded", actor=user, subject=user)
    audit.record("logout", actor=user, subject=user, commit=True)
    rows = chain()
    assert [prev for _, prev, _ in rows] == [audit.GENESIS] + [own for _, _, own in rows[:-1]]
    assert audit.verify_chain().ok


def test_an_event_rolled_back_is_not_linked_to(app):
    """After a transaction with an event is rolled back, does the next event link to the last
    committed one (not to the event that never happened)?"""
    user = make_user()
    audit.record("logout", actor=user, subject=user, commit=True)
    audit.record("mfa.code_sent", actor=user, subject=user)
    db.session.rollback()
    audit.record("login.succeeded", actor=user, subject=user, commit=True)
    rows = chain()
    assert [event for event, _, _ in rows] == ["logout", "login.succeeded"]
    assert rows[1][1] == rows[0][2]
    assert audit.verify_chain().ok


def test_an_event_after_a_commit_links_to_another_writers_event(app, make_app):
    """Once a transaction ends, does its next event read the head again (another instance may
    have written in between)?"""
    user = make_user()
    audit.record("logout", actor=user, subject=user, commit=True)
    other = make_app()
    with other.app_context():
        audit.record("mfa.code_sent", commit=True)
    audit.record("login.succeeded", actor=user, subject=user, commit=True)
    assert [event for event, _, _ in chain()] == ["logout", "mfa.code_sent", "login.succeeded"]
    assert audit.verify_chain().ok
