"""Sessions and rate limits through Redis Sentinel (redis+sentinel:// URLs), with a failover.

A master, a replica and one Sentinel of the test's own, on free loopback ports (redis-server
runs as a Sentinel with --sentinel); each is stopped by its process id.
"""

from __future__ import annotations

import time

import pytest
from redis import Redis

from config import redis_fail_fast
from tests.factories import PASSWORD, make_user
from tests.redis_server import OwnRedis, OwnSentinel


@pytest.fixture
def redis_set(tmp_path):
    """A master with one replica in sync, and a Sentinel watching them as "portal"."""
    (tmp_path / "master").mkdir()
    (tmp_path / "replica").mkdir()
    master = OwnRedis(tmp_path / "master", "--repl-diskless-sync-delay", "0").start()  # sync at once
    replica = OwnRedis(tmp_path / "replica", "--replicaof", "127.0.0.1", str(master.port)).start()
    sentinel = None
    try:
        wait_until(lambda: Redis.from_url(replica.url).info("replication")["master_link_status"] == "up",
                   "the replica did not sync")
        sentinel = OwnSentinel(tmp_path, master).start()
        yield master, replica, sentinel
    finally:
        for server in (sentinel, replica, master):
            if server is not None:
                server.stop()


def wait_until(check, what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # a server on its way up or down
            pass
        time.sleep(0.1)
    raise AssertionError(what)


def test_sessions_and_limits_through_sentinel_survive_a_failover(make_app, app, redis_set):
    """Sessions and limits in the master Sentinel names; the master dies, the replica is
    promoted, and the signed-in user is still signed in (their session was replicated)."""
    from portal.extensions import limiter

    master, replica, sentinel = redis_set
    # The limiter is one object per process: a store an earlier test stopped must not leave it on
    # its in-memory fallback, and a busy machine gets more than the production half second.
    limiter._storage_dead = False
    portal = make_app(SESSION_REDIS_URL=f"{sentinel.url}/0", RATELIMIT_ENABLED=True,
                      RATELIMIT_STORAGE_URI=sentinel.url, RATELIMIT_STORAGE_OPTIONS=redis_fail_fast(5.0),
                      SESSION_REDIS_TIMEOUT=5.0)
    try:
        make_user("sentinel@example.test", display_name="Sen Tinel")
        client = portal.test_client()
        client.post("/login", data={"email": "sentinel@example.test", "password": PASSWORD})
        assert "Welcome, Sen Tinel." in client.get("/").get_data(as_text=True)
        on_master = Redis.from_url(master.url)
        assert on_master.keys(f"{portal.config['SESSION_KEY_PREFIX']}*")  # the session is on the master
        # So is the Log In's limit (under whichever key prefix the process's one limiter took first).
        assert [key for key in on_master.keys("*") if not key.startswith(portal.config["SESSION_KEY_PREFIX"].encode())]
        assert client.get("/readyz").json["checks"] == {
            "database": "ok", "session_store": "ok", "rate_limit_store": "ok"}
        wait_until(lambda: Redis.from_url(replica.url).keys(f"{portal.config['SESSION_KEY_PREFIX']}*"),
                   "the session did not reach the replica")

        master.stop()
        wait_until(lambda: sentinel.master_port() == replica.port, "Sentinel did not promote the replica", 30)
        # The first request may still hold a connection to the old master (a 503 page); then
        # the client asks Sentinel again and finds the new one.
        wait_until(lambda: "Welcome, Sen Tinel." in client.get("/").get_data(as_text=True),
                   "the session did not survive the failover", 10)
        assert client.get("/readyz").status_code == 200
    finally:
        limiter._storage_dead = False  # the limiter is one object per process: the next test starts afresh


def test_a_sentinel_url_without_a_service_is_refused_at_start(make_app, app):
    with pytest.raises(ValueError, match="service name"):
        make_app(SESSION_REDIS_URL="redis+sentinel://127.0.0.1:26379")
