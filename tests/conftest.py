"""Shared fixtures: a migrated database, the app, clients, an auth helper and the outbox.

The database is SQLite in a temporary file, or PostgreSQL when TEST_DATABASE_URL is set.
Sessions live in the database, or in Redis when TEST_SESSION_REDIS_URL is set. The schema is
built once per run by the real migrations (`flask db upgrade`), never by create_all.
"""

from __future__ import annotations

import os
import re
import uuid

import pytest
from flask_migrate import upgrade
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from config import TestingConfig, database_url
from portal import create_app
from portal.extensions import db
from portal.models import OutboxMessage

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
TEST_SESSION_REDIS_URL = os.environ.get("TEST_SESSION_REDIS_URL")


def reset_postgres_schema(url: str) -> None:
    """Start from an empty schema; only ever pointed at a throwaway test database."""
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def database_uri(tmp_path_factory):
    if TEST_DATABASE_URL:
        url = database_url(TEST_DATABASE_URL)
        reset_postgres_schema(url)
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'portal-test.db'}"


@pytest.fixture
def empty_database(database_uri, tmp_path):
    """A brand-new empty database on the same kind of server as the test run."""
    url = make_url(database_uri)
    if url.get_backend_name() == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    name = f"portal_fresh_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def settings(database_uri, tmp_path_factory):
    """Config overrides every test app gets; a per-run Redis key prefix keeps runs apart."""
    run = uuid.uuid4().hex[:8]
    return {
        "SQLALCHEMY_DATABASE_URI": database_uri,
        "SESSION_KEY_PREFIX": f"portal-test-{run}:",
        "QUEUE_SQLITE_PATH": str(tmp_path_factory.mktemp("queue") / "queue.db"),
    }


@pytest.fixture(scope="session")
def migrated(settings):
    app = _make_app(settings)
    with app.app_context():
        db.engine.dispose()
        upgrade()
        db.engine.dispose()
    return True


def _make_app(settings, **overrides):
    class Config(TestingConfig):
        pass

    for key, value in {**settings, **overrides}.items():
        setattr(Config, key, value)
    return create_app(Config)


@pytest.fixture
def make_app(migrated, settings):
    """Build an app with extra settings (each gets its own engine, cleaned afterwards)."""
    apps = []

    def factory(**overrides):
        app = _make_app(settings, **overrides)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app):
    """The app under test. The test body runs in the context of a twin app with the same
    settings, so every request gets its own app context, `g` and database session, exactly
    as in production (a shared context would carry Flask-Login's cached user across requests).
    """
    server = make_app()
    inspector = make_app()
    with inspector.app_context():
        yield server
        db.session.remove()
        _truncate_all()


KEPT_TABLES = {"audit_chain_lock"}  # its one row comes from the migration


def _truncate_all() -> None:
    """Empty every table between tests. On PostgreSQL this is TRUNCATE, which the audit
    trail's triggers refuse (audit_events, audit_checkpoints: migration 0013). Only here, in a
    throwaway test database, they are switched off for this one transaction: with
    session_replication_role = replica no ordinary trigger fires (the test role is a superuser;
    the portal's role never is)."""
    tables = [table for table in db.metadata.sorted_tables if table.name not in KEPT_TABLES]
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            names = ", ".join(table.name for table in tables)
            connection.execute(text("SET LOCAL session_replication_role = replica"))
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            return
        for table in reversed(tables):
            connection.execute(table.delete())


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


class Queue:
    """A real consumer (worker threads) running the queued tasks inside the app under test."""

    def __init__(self, app):
        from portal import tasks

        self.tasks = tasks
        self.app = app
        tasks.huey.flush()  # nothing left over from an earlier test
        self.consumer = tasks.start_consumer(app, workers=2, periodic=False, poll_seconds=0.02)

    def bind(self, app) -> None:
        """Run tasks inside another app (one a test built with other settings)."""
        self.tasks.bind_worker_app(app)

    def drain(self, timeout: float = 15.0) -> None:
        assert self.tasks.drain(timeout), "the queue did not drain"

    def stop(self) -> None:
        try:
            self.tasks.drain(5)
        finally:
            self.consumer.stop(graceful=True)
            self.tasks.bind_worker_app(None)
            self.tasks.init_app(self.app)  # a test may have pointed the queue at a server it stopped
            self.tasks.huey.flush()


@pytest.fixture
def queue(app):
    running = Queue(app)
    yield running
    running.stop()


class Outbox:
    """Read what the portal sent, as a tester would from the dev outbox (after the queue delivered)."""

    def __init__(self, queue: Queue):
        self.queue = queue

    def messages(self, recipient: str | None = None, channel: str | None = None) -> list[OutboxMessage]:
        self.queue.drain()
        query = db.select(OutboxMessage).order_by(OutboxMessage.id)
        if recipient:
            query = query.where(OutboxMessage.recipient == recipient)
        if channel:
            query = query.where(OutboxMessage.channel == channel)
        db.session.expire_all()
        return list(db.session.scalars(query))

    def last(self, recipient: str | None = None, channel: str | None = None) -> OutboxMessage:
        messages = self.messages(recipient, channel)
        assert messages, f"no message for {recipient or 'anyone'}"
        return messages[-1]

    def link(self, recipient: str) -> str:
        """The path of the last link emailed to `recipient`."""
        body = self.last(recipient, "email").body_text
        match = re.search(r"https?://[^/\s]+(/\S+)", body)
        assert match, body
        return match.group(1)


@pytest.fixture
def outbox(app, queue):
    return Outbox(queue)


class Clock:
    """The server's clock, under the test's control (routes read `portal.clock.now`)."""

    def __init__(self):
        from datetime import UTC, datetime

        self.current = datetime.now(UTC).replace(microsecond=0)

    def now(self):
        return self.current

    def advance(self, **delta):
        from datetime import timedelta

        self.current += timedelta(**delta)
        return self.current


@pytest.fixture
def clock(monkeypatch):
    controlled = Clock()
    monkeypatch.setattr("portal.clock.now", controlled.now)
    return controlled


class AuthActions:
    def __init__(self, client):
        self.client = client

    def login(self, email: str, password: str, **kwargs):
        return self.client.post("/login", data={"email": email, "password": password}, **kwargs)

    def logout(self):
        return self.client.post("/logout")

    def enter_code(self, code: str, **kwargs):
        return self.client.post("/login/code", data={"code": code}, **kwargs)

    def login_totp(self, email: str, password: str, secret: str, *, at=None):
        """Log In fully with an authenticator code computed like an app would."""
        import pyotp

        from portal import clock

        self.login(email, password)
        code = pyotp.TOTP(secret).at(at or clock.now())
        return self.enter_code(code)


@pytest.fixture
def auth(client):
    return AuthActions(client)


def redis_url_or_skip() -> str:
    """The Redis to test against: TEST_SESSION_REDIS_URL (CI sets it) or a local one if up."""
    url = TEST_SESSION_REDIS_URL or "redis://127.0.0.1:6379/15"
    from redis import Redis
    from redis.exceptions import RedisError

    try:
        Redis.from_url(url, socket_connect_timeout=1).ping()
    except (RedisError, OSError):
        if TEST_SESSION_REDIS_URL:
            raise
        pytest.skip("no Redis reachable; CI runs this with TEST_SESSION_REDIS_URL")
    return url


def session_cookie(client, app) -> str | None:
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    return cookie.value if cookie else None


@pytest.fixture
def csrf_app(make_app):
    """An app with CSRF protection on, as in production (testing turns it off by default)."""
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        yield app


def token_from(response) -> str:
    """The CSRF token of the form on a page."""
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', response.get_data(as_text=True))
    assert match, "page has no CSRF field"
    return match.group(1)


# Every way a page carries its CSRF token: a form's hidden field (written by hand or by WTForms,
# attributes in either order) and htmx's request header on the page's container.
_CSRF_TOKENS = re.compile(r'(name="csrf_token"[^>]*?value="|"X-CSRFToken": ")[^"]*')


def without_csrf_tokens(html: str) -> str:
    """A page with each CSRF token replaced by TOKEN: a token is signed with the second it was
    made, so two renderings of one page a second apart differ there and nowhere else."""
    return _CSRF_TOKENS.sub(r"\1TOKEN", html)
