"""The audit trail under concurrency and on the pages: sign-ins do not wait on each other for
the audit write, a late row is still sealed, several sealers make one chain, the queue seals,
and support and practice admins see what is sealed and when the last checkpoint was written."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from portal import audit, tasks
from portal.audit import seal
from portal.extensions import db
from portal.models import AuditEvent
from portal.tasks import jobs
from tests.audit_helpers import all_rows, is_postgres, record_some, seal_all, sealed_rows, use_checkpoint_file
from tests.factories import PASSWORD, make_enrollment, make_user
from tests.functional.mfa_helpers import totp_now
from tests.functional.practice_review_helpers import login_admin


def plain(user) -> SimpleNamespace:
    return SimpleNamespace(id=user.id, practice_id=user.practice_id)


class OpenTransaction:
    """Another request, on another instance, that has written its audit event and is still
    running (its transaction open) until `finish()`."""

    def __init__(self, app, user, event_type="login.password_succeeded"):
        self.written, self.release = threading.Event(), threading.Event()
        self.errors = []
        self.thread = threading.Thread(target=self._run, args=(app, user, event_type))
        self.thread.start()
        assert self.written.wait(10), self.errors

    def _run(self, app, user, event_type):
        def hold(conn, cursor, statement, *args):
            # The transaction's events are written as it commits: hold it between that INSERT
            # and its COMMIT, as a slow database or a paused process would.
            if statement.lstrip().upper().startswith("INSERT INTO AUDIT_EVENTS"):
                self.written.set()
                self.release.wait(30)

        try:
            with app.app_context():
                sa_event.listen(db.engine, "after_cursor_execute", hold)
                try:
                    audit.record(event_type, actor=user, subject=user)
                    db.session.commit()
                finally:
                    sa_event.remove(db.engine, "after_cursor_execute", hold)
        except Exception as error:  # pragma: no cover - reported by finish()
            self.errors.append(error)
            self.written.set()

    def finish(self):
        self.release.set()
        self.thread.join(10)
        assert not self.errors, self.errors


def committed_events(app, **where) -> int:
    """Count committed rows through a connection of its own (what any other reader sees)."""
    with app.app_context():
        count = db.session.scalar(select(func.count(AuditEvent.id)).filter_by(**where))
        db.session.remove()
    return count


def test_two_sign_ins_in_parallel_do_not_wait_on_each_other_for_the_audit_write(make_app, app, client):
    """One sign-in's transaction has written its audit event and is still open; another user's
    Log In, with its own audit events, completes and commits meanwhile. (With the old chain lock
    the second one waited for the first to commit.)"""
    if not is_postgres():
        pytest.skip("SQLite has one writer at a time by design; CI's PostgreSQL pass runs this")
    slow = plain(make_user("slow@example.test"))
    fast = make_user("fast@example.test")
    first = OpenTransaction(make_app(), slow)
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            login = pool.submit(client.post, "/login", data={"email": "fast@example.test", "password": PASSWORD})
            response = login.result(timeout=10)  # would time out if it queued behind the open transaction
        assert response.status_code == 303 and response.headers["Location"] == "/"
        assert committed_events(make_app(), subject_id=fast.id) == 2  # password succeeded, login succeeded
        assert committed_events(make_app(), subject_id=slow.id) == 0  # still in flight
    finally:
        first.finish()
    assert seal_all() == 3
    assert audit.verify_chain().ok


def test_a_row_committed_late_by_a_slow_transaction_is_still_sealed(make_app, app):
    """The slow transaction's row has the lower id but becomes visible after the sealer has
    sealed a later one: it gets the next seal number, and the chain verifies."""
    if not is_postgres():
        pytest.skip("needs two writers at once (PostgreSQL); the SQLite case is in test_audit_seal.py")
    user = plain(make_user())
    slow = OpenTransaction(make_app(), user, "mfa.code_sent")
    try:
        audit.record("logout", actor=user, subject=user, commit=True)
        assert seal_all() == 1
    finally:
        slow.finish()
    assert seal_all() == 1
    rows = sealed_rows()
    assert [(row.seal_seq, row.event_type) for row in rows] == [(1, "logout"), (2, "mfa.code_sent")]
    assert rows[1].id < rows[0].id
    assert audit.verify_chain().ok


def test_several_sealers_at_once_make_one_valid_chain(make_app, app, monkeypatch):
    """Four sealers (as on several consumers) run at once, in small batches, while events keep
    arriving: every row is sealed exactly once, the numbers have no gap, the chain verifies."""
    monkeypatch.setattr(seal, "BATCH", 7)
    user = plain(make_user())
    record_some(user, 150)
    sealers = [make_app() for _ in range(4)]
    writer = make_app()
    start = threading.Barrier(len(sealers) + 1)
    errors, sealed = [], []

    def run_sealer(sealer_app):
        try:
            with sealer_app.app_context():
                start.wait(10)
                for _ in range(15):
                    sealed.append(seal.seal_pending(limit=None))
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    def write():
        try:
            with writer.app_context():
                start.wait(10)
                for _ in range(50):
                    audit.record("logout", actor=user, subject=user, commit=True)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=run_sealer, args=(sealer,)) for sealer in sealers]
    threads.append(threading.Thread(target=write))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    sealed.append(seal_all())
    rows = all_rows()
    assert len(rows) == 200 and sum(sealed) == 200
    assert sorted(row.seal_seq for row in rows) == list(range(1, 201))
    report = audit.verify_chain()
    assert report.ok and report.sealed == 200, report.summary()


# -- the queue ------------------------------------------------------------------------------------


def test_the_queue_seals_and_the_periodic_tasks_schedule_passes_and_checkpoints(app, queue, tmp_path):
    path = use_checkpoint_file(tmp_path / "checkpoints.jsonl", app)
    user = plain(make_user())
    record_some(user, 3)
    tasks.enqueue(jobs.seal_audit_trail)
    queue.drain()
    assert [row.seal_seq for row in all_rows()] == [1, 2, 3]

    tasks.huey.flush()
    record_some(user, 1)
    assert jobs.audit_sealing.call_local() == 1  # seals now, and every 10 s until the next minute:
    deadline = time.monotonic() + 5
    while tasks.huey.pending_count() and time.monotonic() < deadline:
        time.sleep(0.05)  # the consumer moves tasks with a later eta to its schedule
    scheduled = tasks.huey.scheduled()
    assert sorted(task.name for task in scheduled) == ["seal_audit_trail"] * 5
    etas = sorted(task.eta for task in scheduled)
    assert [round((later - etas[0]).total_seconds()) for later in etas] == [0, 10, 20, 30, 40]
    assert jobs.schedule_sealing_passes(60) == [] and jobs.schedule_sealing_passes(25) == [25, 50]
    tasks.huey.flush()

    record_some(user, 1)
    body = jobs.audit_checkpoint.call_local()
    assert body["seq"] == 5 and jobs.audit_checkpoint.call_local() is None  # not due again yet
    assert len(path.read_text().splitlines()) == 1
    assert audit.verify_chain([str(path)]).ok


# -- 5. readable: the pages ------------------------------------------------------------------------


@pytest.fixture
def support(app, client, auth, clock):
    user = make_user("support@portal.test", role="support", display_name="Sasha Support")
    secret = make_enrollment(user, "totp")
    assert auth.login_totp("support@portal.test", PASSWORD, secret).status_code == 303
    clock.advance(seconds=30)
    response = client.post("/support/confirm", data={"password": PASSWORD, "code": totp_now(secret, clock)})
    assert response.status_code == 303
    return user


def test_support_audit_page_shows_what_is_sealed_and_the_last_checkpoint(app, client, support, tmp_path):
    use_checkpoint_file(tmp_path / "checkpoints.jsonl", app)
    page = client.get("/support/audit").get_data(as_text=True)
    assert "No checkpoint written yet." in page and "Not yet sealed" in page
    assert seal_all() >= 1
    body = seal.write_checkpoint(force=True)
    audit.record("logout", actor=support, subject=support, commit=True)  # after the checkpoint: unsealed
    page = client.get("/support/audit").get_data(as_text=True)
    written = body["at"][:16].replace("T", " ")
    assert f"Last checkpoint written {written} UTC, covering events up to seal #{body['seq']}." in page
    rows = all_rows()
    newest, oldest = rows[-1], rows[0]
    after_newest = page.split(f'<tr id="event-{newest.id}">')[1]
    assert "Not yet sealed" in after_newest[:2000]
    after_oldest = page.split(f'id="event-{oldest.id}"')[1]
    assert f"Sealed #{oldest.seal_seq}" in after_oldest[:2000]
    assert "about every 10 seconds" in page and "every five minutes" in page


def test_practice_events_page_shows_what_is_sealed_and_the_last_checkpoint(app, client, auth, alder, tmp_path):
    use_checkpoint_file(tmp_path / "checkpoints.jsonl", app)
    auth.login("finn@alder.test", PASSWORD)
    auth.logout()
    seal_all()
    body = seal.write_checkpoint(force=True)
    login_admin(auth, alder)  # its own events come after the checkpoint, unsealed
    page = client.get("/practice/audit").get_data(as_text=True)
    assert f"covering events up to seal #{body['seq']}" in page
    assert "Sealed #1" in page and "Not yet sealed" in page
    # An empty page (a filter matching nothing) still says when the last checkpoint was written.
    page = client.get("/practice/audit", query_string={"event_type": "mfa.cleared"}).get_data(as_text=True)
    assert "No events match." in page and f"covering events up to seal #{body['seq']}" in page
