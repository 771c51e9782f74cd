"""One clock: column defaults, audit times, session expiry and the CLI all read portal.clock."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, Practice, ServerSession, User
from tests.factories import PASSWORD, make_practice, make_user


def test_moving_the_clock_moves_every_timestamp(app, make_app, clock):
    """With the server clock a year ahead, is every time the portal writes a year ahead too?"""
    clock.advance(days=365)
    client = make_app(SESSION_REDIS_URL=None).test_client()  # sessions in the database, to read their expiry
    practice = make_practice("Clockwork Clinic")
    user = make_user("clock@example.test", practice=practice)
    assert practice.created_at == clock.now() and user.created_at == clock.now()

    client.post("/login", data={"email": "clock@example.test", "password": PASSWORD})
    clock.advance(minutes=3)
    client.post("/logout")  # audited without an explicit time: the default must be the clock's
    db.session.expire_all()
    logout = db.session.scalar(select(AuditEvent).where(AuditEvent.event_type == "logout"))
    assert logout.occurred_at == clock.now()

    clock.advance(minutes=1)
    client.post("/login", data={"email": "clock@example.test", "password": PASSWORD})
    record = db.session.scalar(select(ServerSession).order_by(ServerSession.expiry.desc()))
    assert record.expiry == clock.now() + timedelta(hours=12)


def test_the_cli_reads_the_server_clock(runner, clock):
    """Does a user created from the command line get its verified time from the clock?"""
    clock.advance(days=30)
    make_practice("CLI Practice")
    result = runner.invoke(args=["create-user", "cli-clock@example.test", "--practice", "CLI Practice",
                                 "--role", "staff"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User).where(User.email == "cli-clock@example.test"))
    assert user.email_verified_at == clock.now()
    assert db.session.scalar(select(Practice).where(Practice.name == "CLI Practice")).created_at <= clock.now()
