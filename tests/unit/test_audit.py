"""The audit trail: what is recorded, the plain INSERT, sealing in order, and the append-only table.

The keyed seal, checkpoints and verification against attacks are in test_audit_seal.py; the
parallel sign-ins, several sealers and the pages in tests/functional/test_audit_trail.py.
"""

import json
import re

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from portal import audit
from portal.audit import seal
from portal.extensions import db
from portal.models import AuditEvent
from tests.audit_helpers import (
    all_rows,
    is_postgres,
    record_some,
    seal_all,
    sealed_rows,
    tamper,
    use_checkpoint_file,
)
from tests.factories import PASSWORD, make_enrollment, make_user


def test_a_transactions_events_are_one_plain_insert_at_its_commit(app):
    """Do a transaction's events cost exactly one INSERT, written as it commits: no lock row, no
    read of the chain's head, nothing sent while recording?"""
    from types import SimpleNamespace

    created = make_user()
    user = SimpleNamespace(id=created.id, practice_id=created.practice_id)
    seen = []

    def listen(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    sa_event.listen(db.engine, "before_cursor_execute", listen)
    try:
        audit.record("logout", actor=user, subject=user)
        audit.record("login.succeeded", actor=user, subject=user)
        assert seen == []  # waiting for the commit
        db.session.commit()
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", listen)
    assert len(seen) == 1 and seen[0].lstrip().upper().startswith("INSERT INTO AUDIT_EVENTS"), seen
    rows = all_rows()
    assert [row.event_type for row in rows] == ["logout", "login.succeeded"]  # in the order recorded
    assert [row.seal_seq for row in rows] == [None, None]  # unsealed until the sealer runs
    assert all(row.seal_mac is None and row.seal_key_id is None and row.sealed_at is None for row in rows)


def test_a_rolled_back_transaction_writes_none_of_its_events(app):
    """Does a rollback take the events recorded in its transaction with it, while the next
    transaction's events are written?"""
    user = make_user()
    audit.record("logout", actor=user, subject=user)
    db.session.rollback()
    audit.record("login.succeeded", actor=user, subject=user, commit=True)
    assert [row.event_type for row in all_rows()] == ["login.succeeded"]


def test_the_sealer_seals_committed_rows_in_id_order(app):
    """Does a pass give every committed row the next seal number, in id order, under the newest key?"""
    user = make_user()
    record_some(user, 3)
    assert seal_all() == 3
    record_some(user, 2)
    assert seal_all() == 2 and seal_all() == 0
    rows = all_rows()
    assert [row.seal_seq for row in rows] == [1, 2, 3, 4, 5]
    assert {row.seal_key_id for row in rows} == {"test"}
    assert all(re.fullmatch(r"[0-9a-f]{64}", row.seal_mac) for row in rows)
    assert audit.verify_chain().ok


def test_chain_verifies_and_cli_says_so(app, runner):
    user = make_user()
    record_some(user)
    seal_all()
    assert audit.verify_chain().ok
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output and "5 sealed and verified" in result.output


def test_editing_a_sealed_row_breaks_the_chain_at_that_row(app, runner):
    """If someone edits an event by hand, does `flask audit verify` fail and name that row?"""
    user = make_user()
    record_some(user)
    seal_all()
    ids = [row.id for row in sealed_rows()]
    tamper("UPDATE audit_events SET outcome = 'failure' WHERE id = :id", id=ids[2])
    report = audit.verify_chain()
    assert not report.ok and report.broken_id == ids[2] and report.sealed == 2
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code != 0
    assert f"event id {ids[2]}" in result.output and "FAILED" in result.output


def test_deleting_a_sealed_row_breaks_the_chain_at_the_next_row(app):
    user = make_user()
    record_some(user)
    seal_all()
    ids = [row.id for row in sealed_rows()]
    tamper("DELETE FROM audit_events WHERE id = :id", id=ids[1])
    report = audit.verify_chain()
    assert report.broken_id == ids[2]
    assert "removed" in report.reason


def test_rewriting_a_row_and_its_old_style_hashes_is_still_caught(app):
    """Recomputing the unkeyed hashes with the portal's own `row_hash` does not help: the row's
    MAC, which needs the key, no longer matches."""
    user = make_user()
    record_some(user)
    seal_all()
    target = sealed_rows()[1]
    target.detail = json.dumps({"i": 99})
    new_hash = audit.row_hash(audit.GENESIS, target)
    tamper("UPDATE audit_events SET detail = :detail, prev_hash = :prev, row_hash = :hash WHERE id = :id",
           detail=target.detail, prev=audit.GENESIS, hash=new_hash, id=target.id)
    report = audit.verify_chain()
    assert report.broken_id == target.id and "MAC" in report.reason


def test_postgres_rejects_update_delete_and_truncate(app, tmp_path):
    """Does the database itself refuse to change or remove audit rows (sealed or not) and
    checkpoint copies?"""
    if not is_postgres():
        pytest.skip("the append-only trigger exists on PostgreSQL (CI's second pass)")
    use_checkpoint_file(tmp_path / "checkpoints.jsonl")
    user = make_user()
    record_some(user, 2)
    seal_all()
    seal.write_checkpoint(force=True)
    record_some(user, 1)
    for statement in ("UPDATE audit_events SET outcome = 'x'", "DELETE FROM audit_events",
                      "TRUNCATE audit_events", "UPDATE audit_events SET seal_mac = NULL",
                      "UPDATE audit_events SET seal_seq = seal_seq + 10 WHERE seal_seq IS NOT NULL",
                      "UPDATE audit_checkpoints SET seq = 0", "DELETE FROM audit_checkpoints",
                      "TRUNCATE audit_checkpoints"):
        with pytest.raises(DBAPIError, match="append-only"):
            with db.engine.begin() as connection:
                connection.execute(text(statement))
    assert len(all_rows()) == 3


def test_postgres_lets_the_sealer_fill_empty_seal_columns_once_and_nothing_else(app):
    """The trigger's one exception: an UPDATE that only fills the empty seal columns. Filling
    them and changing the row at the same time, or sealing a sealed row again, is refused."""
    if not is_postgres():
        pytest.skip("the append-only trigger exists on PostgreSQL (CI's second pass)")
    user = make_user()
    record_some(user, 1)
    row_id = all_rows()[0].id
    seal_values = "seal_seq = 99, seal_mac = repeat('a', 64), seal_key_id = 'x', sealed_at = now()"
    with pytest.raises(DBAPIError, match="append-only"):
        with db.engine.begin() as connection:
            connection.execute(text(f"UPDATE audit_events SET {seal_values}, outcome = 'x' WHERE id = :id"),
                               {"id": row_id})
    with pytest.raises(DBAPIError, match="append-only"):
        with db.engine.begin() as connection:  # part of the seal only
            connection.execute(text("UPDATE audit_events SET seal_seq = 99 WHERE id = :id"), {"id": row_id})
    assert seal_all() == 1
    with pytest.raises(DBAPIError, match="append-only"):
        with db.engine.begin() as connection:
            connection.execute(text(f"UPDATE audit_events SET {seal_values} WHERE id = :id"), {"id": row_id})
    assert audit.verify_chain().ok


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


def test_concurrent_writers_then_one_sealer_make_one_chain(make_app, app):
    """Do parallel requests writing events, then a sealer, produce one unbroken chain?"""
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
    assert seal_all() == 10 * len(threads)
    report = audit.verify_chain()
    assert report.ok and report.sealed == report.checked == 10 * len(threads)


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


def test_events_of_one_transaction_are_sealed_one_after_the_other(app):
    """Several events written in one transaction: sealed in id order, each MAC over the one before."""
    user = make_user()
    audit.record("logout", actor=user, subject=user)
    audit.record("login.succeeded", actor=user, subject=user)
    audit.record("logout", actor=user, subject=user, commit=True)
    seal_all()
    rows = sealed_rows()
    assert [row.event_type for row in rows] == ["logout", "login.succeeded", "logout"]
    assert [row.id for row in rows] == sorted(row.id for row in rows)
    assert audit.verify_chain().ok


def test_an_event_rolled_back_never_appears_and_id_gaps_do_not_matter(app):
    """After a transaction with an event is rolled back, is there no trace of it, and does the
    chain (which follows seal numbers, not ids) still verify across the gap it leaves?"""
    user = make_user()
    audit.record("logout", actor=user, subject=user, commit=True)
    audit.record("mfa.code_sent", actor=user, subject=user)
    db.session.rollback()
    if is_postgres():  # a transaction that failed after its INSERT used up an id: the gap it leaves
        db.session.execute(text("SELECT nextval(pg_get_serial_sequence('audit_events', 'id'))"))
        db.session.rollback()
    audit.record("login.succeeded", actor=user, subject=user, commit=True)
    if not is_postgres():  # SQLite reuses the id; make the gap a sequence would leave
        row = all_rows()[-1]
        tamper("UPDATE audit_events SET id = id + 5 WHERE id = :id", id=row.id)
    seal_all()
    rows = sealed_rows()
    assert [row.event_type for row in rows] == ["logout", "login.succeeded"]
    assert rows[1].id - rows[0].id > 1  # a gap in the ids
    assert [row.seal_seq for row in rows] == [1, 2]
    assert audit.verify_chain().ok


def test_an_event_from_another_instance_is_sealed_into_the_same_chain(app, make_app):
    """Rows written by another instance (its own engine) join the one chain in id order."""
    user = make_user()
    audit.record("logout", actor=user, subject=user, commit=True)
    other = make_app()
    with other.app_context():
        audit.record("mfa.code_sent", commit=True)
        seal.seal_pending()
    audit.record("login.succeeded", actor=user, subject=user, commit=True)
    seal_all()
    assert [row.event_type for row in sealed_rows()] == ["logout", "mfa.code_sent", "login.succeeded"]
    assert audit.verify_chain().ok
