"""Server-side sessions through Flask-Session: the cookie carries only a random id.

The database store uses the `sessions` table created by our migrations (Flask-Session's own
SQLAlchemy store would create its table outside them); Redis is used when SESSION_REDIS_URL
is set, so several instances share sessions.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask_session.base import ServerSideSession, ServerSideSessionInterface
from flask_session.redis import RedisSessionInterface
from itsdangerous import want_bytes
from redis import Redis
from sqlalchemy import delete, select

from portal.extensions import db
from portal.models.base import utcnow
from portal.models.session import ServerSession


class DatabaseSessionInterface(ServerSideSessionInterface):
    """Flask-Session store backed by the portal's own `sessions` table."""

    ttl = False

    def _delete_expired_sessions(self) -> None:
        db.session.execute(delete(ServerSession).where(ServerSession.expiry <= utcnow()))
        db.session.commit()

    def _retrieve_session_data(self, store_id: str) -> dict | None:
        record = db.session.scalar(select(ServerSession).where(ServerSession.session_id == store_id))
        if record is None:
            return None
        if record.expiry <= utcnow():
            db.session.delete(record)
            db.session.commit()
            return None
        return self.serializer.decode(want_bytes(record.data))

    def _delete_session(self, store_id: str) -> None:
        db.session.execute(delete(ServerSession).where(ServerSession.session_id == store_id))
        db.session.commit()

    def _upsert_session(
        self, session_lifetime: timedelta, session: ServerSideSession, store_id: str
    ) -> None:
        data = self.serializer.encode(session)
        expiry = utcnow() + session_lifetime
        record = db.session.scalar(select(ServerSession).where(ServerSession.session_id == store_id))
        if record is None:
            db.session.add(ServerSession(session_id=store_id, data=data, expiry=expiry))
        else:
            record.data, record.expiry = data, expiry
        db.session.commit()


def init_sessions(app: Flask) -> None:
    """Install the server-side session interface chosen by configuration."""
    options = dict(
        key_prefix=app.config["SESSION_KEY_PREFIX"],
        use_signer=False,
        permanent=app.config["SESSION_PERMANENT"],
        sid_length=32,
    )
    redis_url = app.config.get("SESSION_REDIS_URL")
    if redis_url:
        client = Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        app.session_interface = RedisSessionInterface(app, client=client, **options)
    else:
        app.session_interface = DatabaseSessionInterface(app, cleanup_n_requests=200, **options)


def regenerate_session_id(app: Flask, session) -> None:
    """Give the current session a new id and drop the old record (session fixation).

    Flask-Session only regenerates a non-empty session; an empty one already has a fresh id
    because empty sessions are never stored.
    """
    app.session_interface.regenerate(session)


def renew_session() -> None:
    """Start over: a new session id and no data (before a login changes who is signed in)."""
    from flask import current_app, session

    regenerate_session_id(current_app, session)
    session.clear()
