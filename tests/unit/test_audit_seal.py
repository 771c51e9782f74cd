"""The keyed seal, checkpoints and `flask audit verify`, tried as an attacker with write access
to the database would: rewrite and recompute, delete the newest rows, empty the table.
Also key rotation, rows left unsealed, late rows, the upgrade from the unkeyed chain, and the
application role of docs/DEPLOY.md (PostgreSQL)."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import secrets
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from flask_migrate import downgrade, upgrade
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from portal import audit
from portal.audit import keys, seal
from portal.audit.errors import AuditKeyError
from portal.audit.verify import verify
from portal.extensions import db
from portal.models.audit import AuditCheckpoint
from portal.models.base import UTCDateTime
from tests.audit_helpers import (
    all_rows,
    forge_from,
    is_postgres,
    record_some,
    seal_all,
    sealed_rows,
    tamper,
    use_checkpoint_file,
)
from tests.factories import make_user

ROOT = Path(__file__).resolve().parents[2]


def new_key(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


@pytest.fixture
def checkpoints(app, tmp_path):
    """A checkpoint file of the test's own, for the test's context and the app under test."""
    return use_checkpoint_file(tmp_path / "audit-checkpoints.jsonl", app)


def sealed_trail(n: int = 6) -> list:
    user = make_user()
    record_some(user, n)
    seal_all()
    return sealed_rows()


# -- 1. keyed: rewriting and recomputing is caught --------------------------------------------


def test_a_row_rewritten_and_resealed_with_a_key_of_ones_own_is_caught(app, runner):
    """An attacker edits a sealed row and recomputes its MAC and every later one with the
    portal's own `row_mac`, keeping our key id but using a key of their own: does `flask audit
    verify` exit non-zero and name that row?"""
    sealed_trail()
    first = forge_from(2, key=secrets.token_bytes(32), detail=json.dumps({"i": 99}))
    report = verify()
    assert not report.ok and report.broken_id == first and report.sealed == 2
    assert "MAC does not match" in report.reason
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert f"BROKEN at event id {first} (seal #3)" in result.output


def test_a_row_resealed_under_a_key_id_of_ones_own_is_caught(app, runner):
    """The same with the attacker's own key id in the rows: the key is not in AUDIT_KEYS."""
    sealed_trail()
    first = forge_from(4, key=secrets.token_bytes(32), key_id="attacker", detail=json.dumps({"i": 7}))
    report = verify()
    assert report.broken_id == first and "'attacker'" in report.reason and "does not list" in report.reason
    assert runner.invoke(args=["audit", "verify"]).exit_code == 1


def test_removing_a_middle_row_and_renumbering_the_rest_is_caught(app):
    """Deleting a sealed row and closing the gap in the seal numbers breaks the next row's MAC
    (its number and its link are in it)."""
    rows = sealed_trail()
    tamper("DELETE FROM audit_events WHERE id = :id", id=rows[2].id)
    tamper("UPDATE audit_events SET seal_seq = seal_seq - 1 WHERE seal_seq > 3")
    report = verify()
    assert report.broken_id == rows[3].id and "MAC" in report.reason


def test_an_unsealed_row_given_a_made_up_seal_is_caught(app):
    """A row sealed by someone without the key (the seal columns filled by hand)."""
    sealed_trail(3)
    user = make_user()
    record_some(user, 1)
    row = all_rows()[-1]
    tamper("UPDATE audit_events SET seal_seq = 4, seal_mac = :mac, seal_key_id = 'test', sealed_at = occurred_at "
           "WHERE id = :id", mac="f" * 64, id=row.id)
    assert verify().broken_id == row.id


# -- 2. checkpoints outside the database: deleting the newest rows, emptying the table ----------


def test_deleting_the_newest_rows_is_caught_with_the_checkpoint_file(app, runner, checkpoints):
    """Rows deleted from the end leave an intact shorter chain: only a checkpoint kept outside
    the database shows they were there."""
    rows = sealed_trail(6)
    body = seal.write_checkpoint(force=True)
    assert body["seq"] == 6
    tamper("DELETE FROM audit_events WHERE seal_seq > 4")
    # With the database's own checkpoint copies still there, they already show it.
    assert "the newest 2 sealed row(s) were removed" in " ".join(verify().problems)
    tamper("DELETE FROM audit_checkpoints")  # a careful attacker removes those too
    assert verify().ok, "without a copy outside the database this cannot be seen (documented)"
    report = verify([str(checkpoints)])
    assert not report.ok and any("covers seals #1-#6, but the sealed chain ends at #4" in p for p in report.problems)
    result = runner.invoke(args=["audit", "verify", "--checkpoints", str(checkpoints)])
    assert result.exit_code == 1 and "the newest 2 sealed row(s) were removed" in result.output
    assert rows[-1].id


def test_emptying_the_table_is_caught_with_the_checkpoint_file(app, runner, checkpoints):
    """TRUNCATE is refused on PostgreSQL; deleting every row (SQLite, or a superuser who turns
    the triggers off) is caught by the checkpoints."""
    sealed_trail(4)
    seal.write_checkpoint(force=True)
    if is_postgres():
        with pytest.raises(DBAPIError, match="append-only: TRUNCATE"):
            with db.engine.begin() as connection:
                connection.execute(text("TRUNCATE audit_events"))
        assert len(all_rows()) == 4
    tamper("DELETE FROM audit_events")
    tamper("DELETE FROM audit_checkpoints")
    result = runner.invoke(args=["audit", "verify", "--checkpoints", str(checkpoints)])
    assert result.exit_code == 1
    assert "covers seals #1-#4, but the sealed chain ends at #0" in result.output
    assert "Events: 0 in the table" in result.output


def test_an_attacker_with_the_key_is_still_caught_by_the_shipped_checkpoints(app, checkpoints):
    """With our key, a rewritten and resealed chain passes the MACs; the checkpoint shipped
    before the rewrite still names the old MAC of its row."""
    sealed_trail(5)
    seal.write_checkpoint(force=True)
    forge_from(0, key=keys.current_keys().current, detail=json.dumps({"i": 5}))
    report = verify([str(checkpoints)], database_checkpoints=False)
    assert report.broken_id is None and report.sealed == 5
    assert not report.ok and any("different MAC for seal #5" in problem for problem in report.problems)


def test_an_edited_or_forged_checkpoint_is_reported(app, checkpoints):
    """A checkpoint edited by hand, one signed with another key under our key's id, and a line
    that cannot be read are each a problem; the genuine ones still count."""
    sealed_trail(3)
    seal.write_checkpoint(force=True)
    line = json.loads(checkpoints.read_text().splitlines()[0])
    edited = {**line, "seq": 2, "count": 2}
    _, forged = seal.checkpoint_line(keys.parse([new_key("test")]), seq=3, mac=line["mac"], at=seal.clock.now())
    with open(checkpoints, "a") as handle:
        handle.write(json.dumps(edited) + "\n" + forged + "\n" + '{"type": "portal.audit.checkpoint", "oops"\n')
    report = verify([str(checkpoints)])
    assert f"checkpoint {checkpoints}:2 ({line['at']}) has a bad signature" in " ".join(report.problems)
    assert f"checkpoint {checkpoints}:3 ({line['at']}) has a bad signature" in " ".join(report.problems)
    assert f"{checkpoints}:4 mentions a checkpoint but is not one that can be read" in report.problems
    assert len(report.problems) == 3 and report.newest_proven.seq == 3


# -- checkpoints: signed, logged, appended, only when due ---------------------------------------


def test_a_checkpoint_is_signed_logged_appended_and_kept(app, checkpoints, caplog):
    rows = sealed_trail(3)
    with caplog.at_level(logging.INFO, logger="portal.audit.checkpoint"):
        body = seal.write_checkpoint(force=True)
    lines = checkpoints.read_text().splitlines()
    assert len(lines) == 1
    written = json.loads(lines[0])
    assert written == body
    assert written["seq"] == written["count"] == 3 and written["mac"] == rows[-1].seal_mac
    assert written["key_id"] == "test" and re.fullmatch(r"[0-9a-f]{64}", written["sig"])
    assert written["sig"] == seal.sign_checkpoint(keys.current_keys().current, written)
    assert [record.getMessage() for record in caplog.records if record.name == "portal.audit.checkpoint"] == [lines[0]]
    kept = db.session.scalars(select(AuditCheckpoint)).all()
    assert [(copy.seq, copy.line) for copy in kept] == [(3, lines[0])]
    assert oct(os.stat(checkpoints).st_mode & 0o777) == "0o640"


def test_a_checkpoint_is_written_when_due_and_not_before(app, checkpoints, clock):
    """With AUDIT_CHECKPOINT_SECONDS = 300 and a per-minute task: at most one per interval
    (less half a minute of slack for the schedule), whichever consumer runs it."""
    assert seal.write_checkpoint() is not None  # the first one, on an empty trail
    assert seal.write_checkpoint() is None
    clock.advance(seconds=240)
    assert seal.write_checkpoint() is None
    clock.advance(seconds=40)
    assert seal.write_checkpoint() is not None
    assert len(checkpoints.read_text().splitlines()) == 2


def test_checkpoints_are_read_from_a_shipped_json_log(app, checkpoints, tmp_path):
    """A log shipper's copy (JSON log objects, other lines in between) serves as well."""
    sealed_trail(2)
    seal.write_checkpoint(force=True)
    line = checkpoints.read_text().splitlines()[0]
    shipped = tmp_path / "shipped.log"
    shipped.write_text("\n".join([
        json.dumps({"time": "t", "level": "INFO", "logger": "portal.access", "message": "GET /"}),
        json.dumps({"time": "t", "level": "INFO", "logger": "portal.audit.checkpoint", "message": line}),
        f"2026-12-01 10:00:00,000 INFO portal.audit.checkpoint: {line}",
    ]) + "\n")
    tamper("DELETE FROM audit_events WHERE seal_seq = 2")
    tamper("DELETE FROM audit_checkpoints")
    report = verify([str(shipped)])
    assert report.checkpoint_sources[str(shipped)] == 2
    assert sum("the newest 1 sealed row(s) were removed" in problem for problem in report.problems) == 2


# -- 3. unsealed rows, late rows -------------------------------------------------------------------


def test_a_row_left_unsealed_too_long_fails_verify(app, runner, clock):
    """No sealer running: fine for a while, a failure once a row waits longer than
    AUDIT_UNSEALED_MAX_SECONDS; sealing it clears the failure and leaves a note."""
    user = make_user()
    record_some(user, 2)
    first = all_rows()[0].id
    assert verify().ok and verify().checked == 2
    clock.advance(seconds=301)
    report = verify()
    assert not report.ok and report.stale_unsealed == 2
    assert f"the first event id {first}" in report.problems[0]
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1 and "waited longer than 300 s to be sealed" in result.output
    assert "Sealed 2 audit event(s)." in runner.invoke(args=["audit", "seal"]).output
    report = verify()
    assert report.ok and report.late_sealed == 2 and "were sealed more than the limit after" in report.summary()


def test_a_row_that_appears_late_with_a_lower_id_is_sealed_after_the_others(app):
    """A slow transaction commits its row after rows with higher ids were sealed: it gets the
    next seal number (the chain follows seal_seq, not the id) and everything verifies."""
    user = make_user()
    record_some(user, 3)
    rows = all_rows()
    tamper("UPDATE audit_events SET id = id + 10")  # leave room below, as a slow writer would
    seal_all()
    late_id = rows[0].id + 5
    with db.engine.begin() as connection:  # the slow transaction's row, committed only now
        connection.execute(sa.insert(seal.events).values(
            id=late_id, occurred_at=seal.clock.now(), event_type="logout", outcome="success", detail="{}"))
    assert seal_all() == 1
    order = [(row.seal_seq, row.id) for row in sealed_rows()]
    assert order[-1] == (4, late_id) and [seq for seq, _ in order] == [1, 2, 3, 4]
    assert order[-1][1] < order[0][1]
    assert verify().ok


# -- key rotation and keys -----------------------------------------------------------------------


def test_rows_under_an_old_key_verify_while_it_is_listed(make_app, app, checkpoints):
    old, new = new_key("k1"), new_key("k2")
    user = make_user()
    with make_app(AUDIT_KEYS=[old], AUDIT_CHECKPOINT_PATH=str(checkpoints)).app_context():
        record_some(user, 3)
        seal_all()
        seal.write_checkpoint(force=True)
    with make_app(AUDIT_KEYS=[new, old], AUDIT_CHECKPOINT_PATH=str(checkpoints)).app_context():
        record_some(user, 2)
        seal_all()
        seal.write_checkpoint(force=True)
        report = verify([str(checkpoints)])
        assert report.ok, report.summary()
        assert report.keys_used == {"k1": 3, "k2": 2} and report.newest_proven.seq == 5
        assert "keys: k1 3, k2 2" in report.summary()
    assert [row.seal_key_id for row in sealed_rows()] == ["k1"] * 3 + ["k2"] * 2
    with make_app(AUDIT_KEYS=[new]).app_context():
        report = verify([str(checkpoints)])
        assert not report.ok and report.broken_id == sealed_rows()[0].id
        assert "'k1', which AUDIT_KEYS does not list" in report.reason
        assert any("signed with key 'k1'" in problem for problem in report.problems)


@pytest.mark.parametrize("value, complaint", [
    (["no-colon"], "id:base64key"),
    (["k 1:" + base64.b64encode(b"x" * 32).decode()], "id:base64key"),
    (["k1:not base64!"], "not valid base64"),
    (["k1:" + base64.b64encode(b"short").decode()], "shorter than 32 bytes"),
    ([new_key("k1"), new_key("k1")], "listed twice"),
    ([], "holds no key"),
])
def test_malformed_audit_keys_stop_the_start(make_app, value, complaint):
    with pytest.raises(AuditKeyError, match=complaint):
        make_app(AUDIT_KEYS=value)


def test_new_key_command_prints_a_usable_key(runner):
    line = runner.invoke(args=["audit", "new-key", "k7"]).output.strip()
    parsed = keys.parse([line])
    assert parsed.current_id == "k7" and len(parsed.current) == 32


def test_checkpoint_command_seals_and_writes(app, runner, checkpoints):
    user = make_user()
    record_some(user, 2)
    result = runner.invoke(args=["audit", "checkpoint"])
    assert result.exit_code == 0 and "Checkpoint at seal #2" in result.output
    result = runner.invoke(args=["audit", "verify", "--checkpoints", str(checkpoints)])
    assert result.exit_code == 0, result.output
    assert "newest proven" in result.output and "seal #2" in result.output


# -- the upgrade from the unkeyed chain ------------------------------------------------------------


def _old_rows(connection, count: int) -> list[SimpleNamespace]:
    """Rows as the previous version wrote them: the unkeyed chain."""
    table = sa.table("audit_events", *(sa.column(name) for name in (
        "event_type", "outcome", "actor_id", "subject_id", "practice_id", "ip", "user_agent", "request_id",
        "detail", "prev_hash", "row_hash")), sa.column("occurred_at", UTCDateTime()))
    previous, written = audit.GENESIS, []
    for i in range(count):
        row = SimpleNamespace(occurred_at=seal.clock.now(), event_type="logout", outcome="success", actor_id=i,
                              subject_id=i, practice_id=None, ip="127.0.0.1", user_agent="old", request_id=None,
                              detail=json.dumps({"i": i}))
        row.prev_hash, row.row_hash = previous, audit.row_hash(previous, row)
        connection.execute(sa.insert(table).values(**vars(row)))
        previous = row.row_hash
        written.append(row)
    return written


def test_the_upgrade_records_the_old_head_and_old_rows_get_sealed(make_app, empty_database, tmp_path):
    """Upgrading a trail of the unkeyed chain: is its head in the first checkpoint (file, log,
    database), are the old rows then sealed with their old hashes, and does the whole verify?
    And does the downgrade give the previous version a chain it accepts?"""
    path = tmp_path / "upgrade-checkpoints.jsonl"
    app = make_app(SQLALCHEMY_DATABASE_URI=empty_database, AUDIT_CHECKPOINT_PATH=str(path))
    with app.app_context():
        upgrade(revision="0011")
        with db.engine.begin() as connection:
            old = _old_rows(connection, 3)
        upgrade()
        first = json.loads(path.read_text().splitlines()[0])
        assert first["seq"] == 0 and first["legacy"] == {"rows": 3, "head": old[-1].row_hash, "head_id": 3,
                                                          "chain": "intact"}
        report = verify([str(path)])
        assert report.ok and report.unsealed == 3
        assert seal.seal_pending(limit=None) == 3
        audit.record("logout", commit=True)
        seal.seal_pending(limit=None)
        report = verify([str(path)])
        assert report.ok and report.sealed == 4, report.summary()
        summary = report.summary()
        assert "3 rows from before the keyed seal" in summary and "the old chain was intact" in summary
        rows = all_rows()
        assert [row.row_hash for row in rows[:3]] == [row.row_hash for row in old] and rows[3].row_hash is None
        downgrade(revision="0011")
        with db.engine.connect() as connection:
            chained = connection.execute(sa.text("SELECT prev_hash, row_hash FROM audit_events ORDER BY id")).all()
        assert [row.row_hash for row in chained[:3]] == [row.row_hash for row in old]
        assert chained[3].prev_hash == old[-1].row_hash and chained[3].row_hash
        downgrade(revision="base")


# -- 4. the application role of docs/DEPLOY.md ----------------------------------------------------


def _role_sql() -> list[str]:
    text_ = (ROOT / "docs" / "DEPLOY.md").read_text()
    block = re.search(r"<!-- audit-role-sql -->\s*```sql\n(.*?)```", text_, re.S).group(1)
    return [statement.strip() for statement in block.split(";") if statement.strip()]


def test_the_documented_role_appends_and_seals_but_cannot_change_or_remove(app, checkpoints):
    """Run the SQL of docs/DEPLOY.md for a fresh role: can it record, seal and checkpoint, and
    is every UPDATE beyond the seal, DELETE and TRUNCATE refused by privileges alone?"""
    if not is_postgres():
        pytest.skip("roles and privileges are PostgreSQL's (CI's second pass)")
    role = f"portal_app_{uuid.uuid4().hex[:8]}"
    with db.engine.begin() as connection:
        connection.execute(text(f"CREATE ROLE {role} NOLOGIN"))
        for statement in _role_sql():
            connection.execute(text(statement.replace("portal_app", role)))
    try:
        user = make_user()
        with db.engine.begin() as connection:
            connection.execute(text(f"SET LOCAL ROLE {role}"))
            connection.execute(sa.insert(seal.events).values(occurred_at=seal.clock.now(), event_type="logout",
                                                             outcome="success", actor_id=user.id, detail="{}"))
            assert seal.take_lock(connection, seal.clock.now())
            assert seal.seal_batch(connection, keys.current_keys(), seal.clock.now()) == 1
        for statement in ("UPDATE audit_events SET outcome = 'x'", "DELETE FROM audit_events",
                          "TRUNCATE audit_events", "DELETE FROM audit_checkpoints",
                          "UPDATE audit_events SET detail = '{}' WHERE seal_seq IS NOT NULL"):
            with pytest.raises(DBAPIError, match="permission denied"):
                with db.engine.begin() as connection:
                    connection.execute(text(f"SET LOCAL ROLE {role}"))
                    connection.execute(text(statement))
        assert verify().ok
    finally:
        with db.engine.begin() as connection:
            connection.execute(text(f"DROP OWNED BY {role}"))
            connection.execute(text(f"DROP ROLE {role}"))
