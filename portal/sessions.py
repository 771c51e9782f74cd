"""Server-side sessions through Flask-Session: the cookie carries only a random id.

The database store uses the `sessions` table created by our migrations (Flask-Session's own
SQLAlchemy store would create its table outside them) and writes through its own short
transactions on the engine, never the request's ORM session: saving a session must not
commit, or depend on, whatever the request left unfinished. Redis is used when
SESSION_REDIS_URL is set, so several instances share sessions.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, g
from flask_session.base import ServerSideSession, ServerSideSessionInterface
from flask_session.redis import RedisSessionInterface
from itsdangerous import want_bytes
from redis import Redis
from sqlalchemy import bindparam, delete, insert, select, update

from portal import clock
from portal.extensions import db
from portal.models.session import ServerSession

_table = ServerSession.__table__

# Every request runs these; built once, so SQLAlchemy reuses their cache keys and compiled SQL.
_SELECT = select(_table.c.data, _table.c.expiry).where(_table.c.session_id == bindparam("sid"))
_INSERT = insert(_table).values(session_id=bindparam("sid"), data=bindparam("data"), expiry=bindparam("expiry"))
_UPDATE = update(_table).where(_table.c.session_id == bindparam("sid")).values(
    data=bindparam("data"), expiry=bindparam("expiry"))
_DELETE = delete(_table).where(_table.c.session_id == bindparam("sid"))
_DELETE_MANY = delete(_table).where(_table.c.session_id.in_(bindparam("sids", expanding=True)))


class _NoRevival:
    """A session read from the store is only ever updated, never re-created.

    Otherwise a request still running when the user logs out (or when support ends the
    session) would write the ended session back at its end, and the old cookie would work again.
    A brand-new or regenerated session id is created as usual.
    """

    def open_session(self, app: Flask, request) -> ServerSideSession:
        session = super().open_session(app, request)
        session.from_store = bool(session)
        return session

    def regenerate(self, session: ServerSideSession) -> None:
        # Flask-Session leaves an empty session's id alone; one emptied earlier in this request
        # is still stored under it, so it gets a new id as well.
        emptied = not session and getattr(session, "from_store", False)
        super().regenerate(session)
        if emptied:
            self._delete_session(self._get_store_id(session.sid))
            session.sid = self._generate_sid(self.sid_length)
            session.modified = True
        session.from_store = False


class RedisSessions(_NoRevival, RedisSessionInterface):
    """Flask-Session's Redis store; an existing session is only updated (SET ... XX)."""

    def _upsert_session(self, session_lifetime: timedelta, session: ServerSideSession, store_id: str) -> None:
        data = self.serializer.encode(session)
        ttl = int(session_lifetime.total_seconds())
        if getattr(session, "from_store", False):
            self.client.set(name=store_id, value=data, ex=ttl, xx=True)
        else:
            self.client.set(name=store_id, value=data, ex=ttl)


class DatabaseSessionInterface(_NoRevival, ServerSideSessionInterface):
    """Flask-Session store backed by the portal's own `sessions` table.

    The record is read on the request's own connection; writes happen when the response is
    saved, after the request's own transaction is over:
    whatever the view left uncommitted is rolled back first (as the app context's teardown
    would), so a session save never commits half-done work and never waits on the request's
    own write lock (SQLite). A regenerated id's old record is deleted at that moment too.
    """

    ttl = False

    def regenerate(self, session: ServerSideSession) -> None:
        # A stored session emptied earlier in this request still has a record under its id.
        if session or getattr(session, "from_store", False):
            stale = g.setdefault("stale_session_ids", [])
            stale.append(self._get_store_id(session.sid))
            session.sid = self._generate_sid(self.sid_length)
            session.modified = True
        session.from_store = False

    def save_session(self, app: Flask, session: ServerSideSession, response) -> None:
        db.session.rollback()
        super().save_session(app, session, response)
        stale = g.pop("stale_session_ids", [])
        if stale:  # not removed with an upsert (e.g. the session ended empty)
            with db.engine.begin() as connection:
                connection.execute(_DELETE_MANY, {"sids": stale})

    def _retrieve_session_data(self, store_id: str) -> dict | None:
        # Read on the request's own connection: the request needs it next anyway, and a
        # read changes nothing that the rollback before saving could undo.
        row = db.session.connection().execute(_SELECT, {"sid": store_id}).first()
        if row is None:
            return None
        if row.expiry <= clock.now():
            self._delete_session(store_id)
            return None
        return self.serializer.decode(want_bytes(row.data))

    def _delete_session(self, store_id: str) -> None:
        with db.engine.begin() as connection:
            connection.execute(_DELETE, {"sid": store_id})

    def _upsert_session(
        self, session_lifetime: timedelta, session: ServerSideSession, store_id: str
    ) -> None:
        data = self.serializer.encode(session)
        expiry = clock.now() + session_lifetime
        stale = g.pop("stale_session_ids", [])
        values = {"sid": store_id, "data": data, "expiry": expiry}
        with db.engine.begin() as connection:  # one transaction: drop the old id, write the new
            if stale:
                connection.execute(_DELETE_MANY, {"sids": stale})
            if getattr(session, "from_store", False):
                # Only ever updated: if it was ended meanwhile, it stays ended.
                connection.execute(_UPDATE, values)
            else:
                # A new or regenerated id is fresh randomness, never in the table yet.
                connection.execute(_INSERT, values)


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
        app.session_interface = RedisSessions(app, client=client, **options)
    else:
        # Expired rows are removed by the queue's house-keeping, not inside requests.
        app.session_interface = DatabaseSessionInterface(app, cleanup_n_requests=None, **options)


def regenerate_session_id(app: Flask, session) -> None:
    """Give the current session a new id and drop the old record (session fixation).

    Flask-Session only regenerates a non-empty session; an empty one already has a fresh id
    because empty sessions are never stored.
    """
    app.session_interface.regenerate(session)

