"""Firing requests at once: threads released together by a barrier, clients sharing a session."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from tests.conftest import TEST_SESSION_REDIS_URL
from tests.factories import PASSWORD

THREADS = 20
# A connection pool large enough for every thread at once.
POOL = {"hide_parameters": True, "pool_size": THREADS + 5, "max_overflow": 5, "pool_timeout": 30}
# The session stores a race runs against: the run's own (Redis in CI's second pass) and, when
# that is Redis, the database's too, which on PostgreSQL writes without BEGIN and COMMIT.
SESSION_STORES = {"configured store": {}, **({"database store": {"SESSION_REDIS_URL": None}}
                                              if TEST_SESSION_REDIS_URL else {})}


def fire(count: int, action) -> list:
    """Run action(0..count-1) in `count` threads released together by a barrier."""
    barrier = threading.Barrier(count)

    def run(index):
        barrier.wait(timeout=30)
        return action(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def clones(app, client, count: int) -> list:
    """New clients that all carry `client`'s session cookie (one server-side session)."""
    name = app.config["SESSION_COOKIE_NAME"]
    value = client.get_cookie(name).value
    copies = []
    for _ in range(count):
        copy = app.test_client()
        copy.set_cookie(name, value)
        copies.append(copy)
    return copies


def log_in(app, email: str, *, open_code_page: bool = True):
    """Give the password; then, as a browser does after the 303, load the code page (which
    stores the form's CSRF token in the session, so later code submissions leave it as is)."""
    client = app.test_client()
    response = client.post("/login", data={"email": email, "password": PASSWORD})
    assert response.status_code == 303 and response.headers["Location"] == "/login/code"
    if open_code_page:
        assert client.get("/login/code").status_code == 200
    return client
