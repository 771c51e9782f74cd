"""Server-side sessions through Flask-Session: the cookie carries only a random id.

The database store uses the `sessions` table created by our migrations (Flask-Session's own
SQLAlchemy store would create its table outside them) and writes through its own short
transactions on the engine, never the request's ORM session: saving a session must not
commit, or depend on, whatever the request left unfinished. Redis is used when
SESSION_REDIS_URL is set, so several instances share sessions.

When the store cannot be reached (down, or hung past SESSION_REDIS_TIMEOUT), no session is
opened and the request is answered with the 503 "briefly unavailable" page before any hook or
view runs, so nothing is written; a session that cannot be saved at the end turns the response
into that page. Health checks and static files never open a session. When Redis comes back
without the sessions it held (restarted without persistence), the people whose sessions were
lost are told so on their way to Log In.

A visitor whose session holds nothing but its CSRF token and the messages on their way to
the next page (someone looking at Log In, or sent there with "Log In first.") is not stored at
all: the cookie carries them, signed, instead of a session id (see `_NoRevival._save`).
Otherwise every anonymous page view would write a record that lives for hours, and anyone
could fill the store by reloading a public page.
"""

from __future__ import annotations

import secrets
import time
from datetime import timedelta

from flask import Flask, flash, g
from flask_session.base import ServerSideSession, ServerSideSessionInterface
from flask_session.redis import RedisSessionInterface
from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer, want_bytes
from redis.exceptions import RedisError
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import OperationalError

from portal import clock, errors, redis_client
from portal.database import single_statement_writes
from portal.extensions import db
from portal.models.session import ServerSession

_table = ServerSession.__table__

# Every request runs these; built once, so SQLAlchemy reuses their cache keys and compiled SQL.
_SELECT = select(_table.c.data, _table.c.expiry).where(_table.c.session_id == bindparam("sid"))
_INSERT = insert(_table).values(session_id=bindparam("sid"), data=bindparam("data"), expiry=bindparam("expiry"))
_UPDATE = update(_table).where(_table.c.session_id == bindparam("sid")).values(
    data=bindparam("data"), expiry=bindparam("expiry"))
_DELETE = delete(_table).where(_table.c.session_id == bindparam("sid"))
# A regenerated id (Log In, each step) moves the stored record to the new id: one statement
# where dropping the old id and inserting the new would be two, on the two hottest requests.
_RENAME = update(_table).where(_table.c.session_id == bindparam("old_sid")).values(
    session_id=bindparam("sid"), data=bindparam("data"), expiry=bindparam("expiry"))
_DELETE_MANY = delete(_table).where(_table.c.session_id.in_(bindparam("sids", expanding=True)))


# What a request whose session was lost with the store is told, on its way to Log In.
SESSIONS_LOST = ("You were logged out because the portal's session store restarted and lost the sessions it held. "
                 "Log In again to continue.")
# Endpoints that never open a session: load balancers' checks must not depend on the session
# store (readiness reports it), and the 503 page's stylesheet must load while it is down.
SESSIONLESS_ENDPOINTS = ("static", "health.liveness", "health.readiness", "health.metrics")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# A visitor's cookie (a signed CSRF token and messages) starts with this; "." never occurs in a
# session id.
VISITOR_COOKIE_PREFIX = "v."
_VISITOR_SALT = "portal.visitor"
_FLASHES = "_flashes"  # where Flask keeps the messages for the next page


class _NoRevival:
    """A session read from the store is only ever updated, never re-created.

    Otherwise a request still running when the user logs out (or when support ends the
    session) would write the ended session back at its end, and the old cookie would work again.
    A brand-new or regenerated session id is created as usual.

    Also the store's failures: `store_errors` raised while opening leave the request without a
    session (Flask's null session, which nothing can write) and `g.session_store_error` set, for
    the first hook to answer with the 503 page; raised while saving, they replace the response
    with that page.
    """

    store_errors: tuple[type[BaseException], ...] = ()

    def open_session(self, app: Flask, request) -> ServerSideSession | None:
        if _sessionless(app, request):
            return None
        sid = request.cookies.get(app.config["SESSION_COOKIE_NAME"])
        visitor = None
        if sid and sid.startswith(VISITOR_COOKIE_PREFIX):
            visitor, sid = _visitor_data(app, sid), None
        try:
            self._before_open(request, sid)
            if sid:
                session = super().open_session(app, request)
            else:
                session = self.session_class(sid=self._generate_sid(self.sid_length), permanent=self.permanent)
            session.from_store = bool(session)
            if visitor:
                session.update(visitor)
                session.visitor_data, session.modified = dict(visitor), False
            if sid and session.sid != sid:
                g.session_lost = self._store_lost_sessions(app, sid)
        except self.store_errors as error:
            self._store_failed(error)
            g.session_store_error = error
            return None
        return session

    def save_session(self, app: Flask, session: ServerSideSession, response) -> None:
        try:
            self._save(app, session, response)
        except self.store_errors as error:
            self._store_failed(error)
            errors.replace_with_unavailable(response, error)

    def _save(self, app: Flask, session: ServerSideSession, response) -> None:
        if session and not getattr(session, "from_store", False) and session.keys() <= {_csrf_key(app), _FLASHES}:
            _set_visitor_cookie(app, self, session, response)
            return
        super().save_session(app, session, response)

    def _before_open(self, request, sid: str | None) -> None:
        """Called before the session is read (nothing by default)."""

    def _store_failed(self, error: BaseException) -> None:
        """Called when the store failed (nothing by default)."""

    def _store_lost_sessions(self, app: Flask, sid: str) -> bool:
        """A cookie named a session the store does not hold: was it lost with the store?"""
        return False

    def regenerate(self, session: ServerSideSession) -> None:
        # Only an id read from the store has a record to drop (also when emptied earlier in this
        # request). A new id (a visitor's, or one regenerated earlier in this request) was never
        # written: it is simply replaced, and an empty new session needs no id at all yet.
        if getattr(session, "from_store", False):
            self._drop_record(self._get_store_id(session.sid))
        elif not session:
            return
        session.sid = self._generate_sid(self.sid_length)
        session.modified = True
        session.from_store = False

    def _drop_record(self, store_id: str) -> None:
        """The record of a regenerated id goes (now, or with the save)."""
        self._delete_session(store_id)


class RedisSessions(_NoRevival, RedisSessionInterface):
    """Flask-Session's Redis store; an existing session is only updated (SET ... XX).

    Whether a missing session was lost with the store: each session id starts with the time it
    was made (12 hex digits of milliseconds, then 32 random bytes, URL-safe: still only letters,
    digits, "-" and "_"), and the store keeps a marker key (no expiry) holding that time of the
    first session written into it. A cookie naming a session the store does not hold, made
    before that (or with no marker at all yet), names a session the store lost (a restart
    without persistence, a failover to an empty replica, a flush); one made since ended
    normally (Log Out, expiry).
    """

    store_errors = (RedisError, OSError)

    @property
    def _marker(self) -> str:
        return f"{self.key_prefix}!holding-since"  # "!" never occurs in a session id

    def _generate_sid(self, id_length: int) -> str:
        return f"{int(time.time() * 1000):0{_TIME_DIGITS}x}{super()._generate_sid(id_length)}"

    def _before_open(self, request, sid: str | None) -> None:
        # A request that may write (a POST) finds out now whether the store is there, before
        # its view commits anything: otherwise only saving the new session would tell.
        if not sid and request.method not in SAFE_METHODS:
            self.client.ping()

    def _store_lost_sessions(self, app: Flask, sid: str) -> bool:
        made_at = _made_at(sid) if len(sid) == _TIME_DIGITS + len(secrets.token_urlsafe(self.sid_length)) else None
        if made_at is None:  # not an id of ours (made up, or from before this scheme)
            return False
        holding_since = _made_at((self.client.get(self._marker) or b"").decode())
        lost = holding_since is None or holding_since > made_at
        if lost:
            app.logger.info("session store: a session was lost with the store (restarted without persistence, "
                            "or emptied); its holder is asked to Log In again")
        return lost

    def _upsert_session(self, session_lifetime: timedelta, session: ServerSideSession, store_id: str) -> None:
        data = self.serializer.encode(session)
        ttl = int(session_lifetime.total_seconds())
        if getattr(session, "from_store", False):
            self.client.set(name=store_id, value=data, ex=ttl, xx=True)
            return
        pipe = self.client.pipeline(transaction=False)  # one round trip
        pipe.set(name=store_id, value=data, ex=ttl)
        pipe.set(self._marker, session.sid[:_TIME_DIGITS], nx=True)  # the first session's time
        pipe.execute()


_TIME_DIGITS = 12  # a RedisSessions id's prefix: when it was made, in milliseconds (hex)
_HEX = frozenset("0123456789abcdef")


def _made_at(sid: str) -> int | None:
    """When a session id of RedisSessions (or the marker) says it was made, in milliseconds."""
    prefix = sid[:_TIME_DIGITS]
    return int(prefix, 16) if len(prefix) == _TIME_DIGITS and set(prefix) <= _HEX else None


class DatabaseSessionInterface(_NoRevival, ServerSideSessionInterface):
    """Flask-Session store backed by the portal's own `sessions` table.

    The record is read on the request's own connection; writes happen when the response is
    saved, after the request's own transaction is over:
    whatever the view left uncommitted is rolled back first (as the app context's teardown
    would), so a session save never commits half-done work and never waits on the request's
    own write lock (SQLite). A regenerated id's old record is deleted at that moment too.
    """

    ttl = False
    store_errors = (OperationalError,)

    def _store_failed(self, error: BaseException) -> None:
        db.session.rollback()

    def _drop_record(self, store_id: str) -> None:
        # With the save, where the new id takes the record over (renamed) in one statement.
        g.setdefault("stale_session_ids", []).append(store_id)

    def _save(self, app: Flask, session: ServerSideSession, response) -> None:
        db.session.rollback()
        super()._save(app, session, response)
        stale = g.pop("stale_session_ids", [])
        if stale:  # not removed with an upsert (e.g. the session ended empty)
            with single_statement_writes(db.engine) as connection:
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
        with single_statement_writes(db.engine) as connection:
            connection.execute(_DELETE, {"sid": store_id})

    def _upsert_session(
        self, session_lifetime: timedelta, session: ServerSideSession, store_id: str
    ) -> None:
        data = self.serializer.encode(session)
        expiry = clock.now() + session_lifetime
        stale = g.pop("stale_session_ids", [])
        values = {"sid": store_id, "data": data, "expiry": expiry}
        # Nearly every save is one statement, sent on its own (see single_statement_writes).
        with single_statement_writes(db.engine) as connection:
            if getattr(session, "from_store", False):
                # Only ever updated: if it was ended meanwhile, it stays ended.
                connection.execute(_UPDATE, values)
                return
            # A new or regenerated id is fresh randomness, never in the table yet.
            if not stale:
                connection.execute(_INSERT, values)
                return
            # A regenerated one takes over the old record (renamed).
            if len(stale) == 1 and connection.execute(_RENAME, {**values, "old_sid": stale[0]}).rowcount == 1:
                return
        # That record is gone (ended meanwhile, or the id was regenerated twice): in one
        # transaction, the old ids are dropped and the new one inserted.
        with db.engine.begin() as connection:
            connection.execute(_DELETE_MANY, {"sids": stale})
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
        client = redis_client.connect(redis_url, timeout=app.config["SESSION_REDIS_TIMEOUT"])
        app.session_interface = RedisSessions(app, client=client, **options)
    else:
        # Expired rows are removed by the queue's house-keeping, not inside requests.
        app.session_interface = DatabaseSessionInterface(app, cleanup_n_requests=None, **options)

    def answer_without_session():
        """The session store failed as this request came in: the 503 page, before anything
        (CSRF, rate limits, the login gate, a view) reads the session or writes anywhere. A
        session lost with the store: say so (shown on the Log In page the gate leads to)."""
        error = g.pop("session_store_error", None)
        if error is not None:
            return errors.session_store_unavailable(error)
        if g.pop("session_lost", False):
            flash(SESSIONS_LOST, "info")
        return None

    # Right after the hooks that time the request and give it its id (inserted before this one,
    # later, by portal.logging and portal.audit): ahead of every hook that reads the session.
    app.before_request_funcs.setdefault(None, []).insert(0, answer_without_session)


def _csrf_key(app: Flask) -> str:
    return app.config["WTF_CSRF_FIELD_NAME"]


class _VisitorSigner(TimestampSigner):
    """Signs a visitor's cookie with the time from the portal's clock."""

    def get_timestamp(self) -> int:
        return int(clock.now().timestamp())


def _visitor_serializer(app: Flask) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(app.secret_key, salt=_VISITOR_SALT, signer=_VisitorSigner)


def _visitor_data(app: Flask, cookie: str) -> dict | None:
    """What a visitor's cookie carries (the CSRF token, messages); None if its signature is
    wrong or it is older than a session may live (the visitor then starts afresh, as after an
    expired session)."""
    try:
        data = _visitor_serializer(app).loads(cookie[len(VISITOR_COOKIE_PREFIX):],
                                              max_age=app.permanent_session_lifetime.total_seconds())
    except BadSignature:
        return None
    allowed = {_csrf_key(app): str, _FLASHES: list}
    if not isinstance(data, dict) or any(not isinstance(value, allowed.get(key, ())) for key, value in data.items()):
        return None
    return data


def _set_visitor_cookie(app: Flask, interface: ServerSideSessionInterface, session: ServerSideSession,
                        response) -> None:
    """Keep a visitor's session (its CSRF token, its messages) in the cookie, signed, not in
    the store.

    The token is still checked as Flask-WTF checks a stored one: the form's signed copy must
    match the session's. Another site can neither read this cookie nor set it (HttpOnly,
    SameSite, and the __Host- prefix in production), as with a session id. The messages are
    the portal's own fixed texts ("Log In first."). The cookie is set when what it carries
    changes; a visitor already holding it gets no Set-Cookie.
    """
    response.vary.add("Cookie")
    data = dict(session)
    if getattr(session, "visitor_data", None) == data:
        return
    response.set_cookie(
        key=interface.get_cookie_name(app),
        value=VISITOR_COOKIE_PREFIX + _visitor_serializer(app).dumps(data),
        expires=interface.get_expiration_time(app, session),
        httponly=interface.get_cookie_httponly(app),
        domain=interface.get_cookie_domain(app),
        path=interface.get_cookie_path(app),
        secure=interface.get_cookie_secure(app),
        samesite=interface.get_cookie_samesite(app),
    )


def _sessionless(app: Flask, request) -> bool:
    """True for a request that never opens a session (SESSIONLESS_ENDPOINTS, by path: the URL
    is not matched yet when the session is opened)."""
    paths = app.extensions.get("portal.sessionless_paths")
    if paths is None:
        paths = app.extensions["portal.sessionless_paths"] = frozenset(
            rule.rule for rule in app.url_map.iter_rules()
            if rule.endpoint in SESSIONLESS_ENDPOINTS and rule.endpoint != "static")
    return request.path in paths or request.path.startswith(app.static_url_path + "/")


def regenerate_session_id(app: Flask, session) -> None:
    """Give the current session a new id and drop the old record (session fixation).

    Flask-Session only regenerates a non-empty session; an empty one already has a fresh id
    because empty sessions are never stored.
    """
    app.session_interface.regenerate(session)

