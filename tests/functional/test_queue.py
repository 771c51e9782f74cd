"""Background work on the task queue: notices leave the request, go out once, survive refusals
and outages. A real consumer (worker threads) runs the tasks; on CI's second pass, on Redis."""

from __future__ import annotations

import logging
import threading

import pytest
from sqlalchemy import event, func, insert, select

from portal import tasks
from portal.extensions import db
from portal.models import DeferredTask, FailedTask, MfaEnrollment, OutboxMessage, Practice, User
from portal.tasks import jobs
from tests.factories import PASSWORD, make_enrollment, make_practice, make_user
from tests.functional.mfa_helpers import HTMX, confirm_password, totp_now
from tests.functional.support_helpers import change_confirmed
from tests.redis_server import OwnRedis
from tests.smtp_server import SMTPServer


def _support_client(client, auth, clock):
    user = make_user("support@portal.test", role="support")
    secret = make_enrollment(user, "totp")
    auth.login_totp("support@portal.test", PASSWORD, secret)
    clock.advance(seconds=30)
    confirmed = client.post("/support/confirm", data={"password": PASSWORD, "code": totp_now(secret, clock)})
    assert confirmed.status_code == 303
    return client


def _add_members(practice: Practice, count: int, *, every_nth_with_mfa: int) -> set[str]:
    """Bulk-add users (one statement); returns the emails of those without MFA."""
    from portal import clock
    from portal.accounts.passwords import hash_password

    password_hash = hash_password(PASSWORD)
    now = clock.now()
    rows = [dict(email=f"m{practice.id}-{n:05d}@bulk.test", display_name=f"Member {n}", role="clinician",
                 practice_id=practice.id, password_hash=password_hash, active=True, session_version=1,
                 email_verified_at=now, created_at=now, mfa_failed_count=0, failed_password_count=0)
            for n in range(count)]
    db.session.execute(insert(User), rows)
    db.session.commit()
    ids = db.session.execute(select(User.id, User.email).where(User.practice_id == practice.id)
                             .order_by(User.id)).all()
    enrolled = [row for index, row in enumerate(ids) if index % every_nth_with_mfa == 0]
    db.session.execute(insert(MfaEnrollment), [dict(user_id=row.id, method="email", enrolled_at=now)
                                               for row in enrolled])
    db.session.commit()
    return {row.email for row in ids} - {row.email for row in enrolled}


class _Statements:
    """Counts the SQL statements the request runs (in this thread: the consumer's are its own)."""

    def __init__(self, app):
        with app.app_context():
            self.engine = db.engine
        self.count = 0
        self.thread = threading.get_ident()

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def _seen(self, *args):
        if threading.get_ident() == self.thread:
            self.count += 1

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._seen)


def _require(client, practice) -> object:
    return change_confirmed(client, f"/support/practices/{practice.id}/requirement",
                            {"required": "on", "reason": "policy"})


def test_requiring_mfa_for_a_large_practice_answers_at_once_and_notifies_each_user_once(
        app, client, auth, clock, queue, outbox):
    """For 5,000 users, does the request do no per-user work, and does each user without MFA get
    exactly one notice once the queue drains?"""
    _support_client(client, auth, clock)
    small, large = make_practice("Small Practice"), make_practice("Large Practice")
    _add_members(small, 50, every_nth_with_mfa=5)
    without = _add_members(large, 5000, every_nth_with_mfa=5)
    queue.drain()

    with _Statements(app) as for_small:
        done = _require(client, small)
    assert done.status_code == 303
    client.get(done.headers["Location"])  # its message read, as a browser would, before the next change
    with _Statements(app) as for_large:
        response = _require(client, large)
    assert response.status_code == 303
    # The same work whatever the practice's size: the notices are not sent in the request.
    assert for_large.count == for_small.count
    assert "4000 user(s) without MFA will be emailed" in client.get(response.headers["Location"]).get_data(as_text=True)

    queue.drain(timeout=180)  # 4,000 emails: a busy CI machine needs longer than the default wait
    notices = [m.recipient for m in outbox.messages(channel="email") if "now requires" in (m.subject or "")]
    large_notices = [email for email in notices if email.startswith(f"m{large.id}-")]
    assert len(large_notices) == len(without) == 4000
    assert set(large_notices) == without  # every one of them, each exactly once


def test_a_notice_that_runs_twice_is_sent_once(app, queue, outbox):
    """If a notice task is delivered twice (a retry after a crash, two consumers), is one email sent?"""
    key = jobs.new_key("test")
    for _ in range(2):
        tasks.enqueue(jobs.email_notice, key, "twice@example.test", "Once only", "mfa_required",
                      {"user": {"display_name": "T"}, "practice_name": "P"})
    threads = [threading.Thread(target=lambda: _run_local(app, key)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outbox.messages("twice@example.test")) == 1


def _run_local(app, key):
    with app.app_context():
        jobs.email_notice.call_local(key, "twice@example.test", "Once only", "mfa_required",
                                     {"user": {"display_name": "T"}, "practice_name": "P"})


def _turn_on_email(client) -> None:
    confirm_password(client, PASSWORD)
    response = client.post("/account/security/device", data={"device": "email"}, headers=HTMX)
    assert response.status_code == 204, response.get_data(as_text=True)


def _smtp_app(make_app, smtp, **extra):
    return make_app(MAIL_TRANSPORT="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port, MAIL_SUPPRESS_SEND=False,
                    MAIL_TIMEOUT_SECONDS=2, **extra)


def test_a_refused_notice_is_retried_with_back_off_and_arrives_once(app, make_app, queue):
    """With the mail server refusing twice, does the third try deliver the notice, exactly once?"""
    make_user("retry@example.test")
    with SMTPServer(refuse=2) as smtp:
        smtp_app = _smtp_app(make_app, smtp)
        queue.bind(smtp_app)
        client = smtp_app.test_client()
        client.post("/login", data={"email": "retry@example.test", "password": PASSWORD})
        _turn_on_email(client)
        queue.drain(30)
        assert smtp.refused == 2
        subjects = [m["message"]["Subject"] for m in smtp.messages]
        assert subjects == ["Multi-factor authentication is on"]
    assert db.session.scalar(select(func.count(FailedTask.id))) == 0


def test_a_notice_that_fails_for_good_is_logged_and_kept(app, make_app, queue, caplog):
    """When every try is refused, is the failure logged and kept, not lost silently?"""
    make_user("never@example.test")
    with SMTPServer(refuse=-1) as smtp:
        smtp_app = _smtp_app(make_app, smtp, QUEUE_RETRIES=1)
        queue.bind(smtp_app)
        client = smtp_app.test_client()
        client.post("/login", data={"email": "never@example.test", "password": PASSWORD})
        with caplog.at_level(logging.ERROR, logger="portal.tasks"):
            _turn_on_email(client)
            queue.drain(30)
        assert smtp.refused == 2 and smtp.messages == []
    failed = db.session.scalars(select(FailedTask)).all()
    assert [(row.name, row.error) for row in failed] == [("email_notice", "DeliveryError")]
    assert "never@example.test" in failed[0].arguments  # enough to send it again by hand
    assert any("failed for good" in record.getMessage() for record in caplog.records)


def test_a_queue_outage_keeps_the_notice_and_sends_it_when_the_queue_returns(app, make_app, queue, tmp_path):
    """With the queue's Redis stopped, does the change still stand, and its notice go out later, once?"""
    redis = OwnRedis(tmp_path).start()
    try:
        redis_app = make_app(QUEUE_REDIS_URL=redis.url, QUEUE_SOCKET_TIMEOUT=0.5)
        queue.bind(redis_app)
        make_user("outage@example.test")
        client = redis_app.test_client()
        client.post("/login", data={"email": "outage@example.test", "password": PASSWORD})
        redis.stop()
        _turn_on_email(client)  # the change is made and says so
        db.session.expire_all()
        user = db.session.scalar(select(User).where(User.email == "outage@example.test"))
        assert user.mfa is not None and user.mfa.method == "email"
        kept = db.session.scalars(select(DeferredTask)).all()
        assert [row.name for row in kept] == ["email_notice"]
        assert tasks.queue_depth() is None  # the queue says it cannot be reached

        redis.start()
        with redis_app.app_context():
            assert tasks.requeue_deferred() == 1
        queue.drain(30)
        sent = db.session.scalars(select(OutboxMessage).where(OutboxMessage.recipient == "outage@example.test")).all()
        assert [m.subject for m in sent] == ["Multi-factor authentication is on"]
        assert db.session.scalar(select(func.count(DeferredTask.id))) == 0
    finally:
        redis.stop()


@pytest.mark.parametrize("event_name", ["enabled"])
def test_notices_are_not_sent_inside_the_request(app, client, event_name):
    """Before any consumer runs, has the request sent nothing but its own page?"""
    make_user("later@example.test")
    client.post("/login", data={"email": "later@example.test", "password": PASSWORD})
    _turn_on_email(client)
    assert db.session.scalar(select(func.count(OutboxMessage.id))) == 0
    assert tasks.queue_depth() >= 1
