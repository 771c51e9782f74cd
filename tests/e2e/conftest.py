"""Browser tests: the real server (gunicorn) and Debian's Chromium driven by Playwright.

Every test gets its own server on a copy of one migrated, seeded database, and runs twice:
`js_on` (HTMX swaps) and `js_off` (plain forms). Select them with `-m e2e`; `make screenshots`
runs the `js_on` half with SCREENSHOTS_DIR set to refresh the user guide's pictures.

Tests run in a desktop window. `@pytest.mark.sizes("desktop", "phone")` runs a test at each size
named (ids `...-desktop`, `...-phone`: 390 x 844, touch); every checked step, at every size,
fails when the page is wider than the window, and axe runs at each size alike.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e import driver
from tests.e2e.server import ServerPool, add_practice_members, build_seeded_database, copy_database

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "sizes(*names): run this browser test in each window size named (tests/e2e/driver.py SIZES); "
                   "desktop only without it")


def pytest_generate_tests(metafunc):
    marker = metafunc.definition.get_closest_marker("sizes")
    if marker is None or "size" not in metafunc.fixturenames:
        return
    unknown = [name for name in marker.args if name not in driver.SIZES]
    if unknown or not marker.args:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: sizes() takes names from {sorted(driver.SIZES)}")
    metafunc.parametrize("size", marker.args, indirect=True)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):
    """Mark every test here `e2e` and `browser` (both registered in pytest.ini)."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.e2e_call_failed = report.failed
    return report


def pytest_terminal_summary(terminalreporter):
    if driver.MINOR_FINDINGS:
        terminalreporter.section("axe findings below 'serious' (not failures)")
        for finding, paths in sorted(driver.MINOR_FINDINGS.items()):
            terminalreporter.write_line(f"{finding}: {', '.join(sorted(paths))}")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(
            f"Chromium is needed for the browser tests and was not found at {path}. "
            "Install it (Debian/Ubuntu: sudo apt-get install chromium) or set CHROMIUM=/path/to/chromium. "
            "Playwright never downloads a browser here: do not run `playwright install`.",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def seeded_database(tmp_path_factory) -> Path:
    """One migrated (`flask db upgrade`) and seeded (`flask seed-demo`) SQLite file per run."""
    return build_seeded_database(tmp_path_factory.mktemp("e2e-seeded"))


@pytest.fixture(scope="session")
def crowded_database(tmp_path_factory, seeded_database) -> Path:
    """The demo data plus 40 more users of Demo Family Practice, 12 of them with Email MFA."""
    database = tmp_path_factory.mktemp("e2e-crowded") / "crowded.db"
    copy_database(seeded_database, database)
    add_practice_members(database, count=40, with_mfa=12)
    return database


@pytest.fixture(scope="session")
def server_pool(tmp_path_factory):
    pool = ServerPool(lambda: tmp_path_factory.mktemp("e2e-server"))
    yield pool
    pool.close()


def _serve(request, pool: ServerPool, template: Path, **settings: str):
    server = pool.take(template, **settings)
    yield server
    pool.release(server)
    if getattr(request.node, "e2e_call_failed", False):
        print(f"--- server log ({server.base_url}) ---\n{server.log_tail()}")


@pytest.fixture
def server(request, server_pool, seeded_database):
    """A fresh portal (server and database) for this test only."""
    yield from _serve(request, server_pool, seeded_database)


@pytest.fixture
def slow_resend_server(request, server_pool, seeded_database):
    """A fresh portal whose "click here" waits 6 seconds after a code is sent (2 elsewhere): long
    enough to see the wait count down."""
    yield from _serve(request, server_pool, seeded_database, MFA_RESEND_COOLDOWN_SECONDS="6")


@pytest.fixture
def crowded_server(request, server_pool, crowded_database):
    """A fresh portal whose Demo Family Practice has 43 users (two pages in the review)."""
    yield from _serve(request, server_pool, crowded_database)


@pytest.fixture(params=[True, False], ids=["js_on", "js_off"])
def js(request) -> bool:
    return request.param


@pytest.fixture
def size(request) -> str:
    """The window size: "desktop", unless the test's `sizes` marker names others."""
    return getattr(request, "param", "desktop")


@pytest.fixture
def open_portal(browser, js, size):
    """Open a browser context (one person) on a server: open_portal(server, flow="sms").

    `permissions` are granted to the server's origin, e.g. ("clipboard-read", "clipboard-write").
    """
    portals = []
    shots = driver.Shots()

    def factory(server, *, flow: str, permissions: tuple[str, ...] = ()) -> driver.Portal:
        portal = driver.Portal(browser, server, js=js, flow=flow, shots=shots, size=size, permissions=permissions)
        portals.append(portal)
        return portal

    yield factory
    try:
        for portal in portals:
            portal.assert_clean()
    finally:
        for portal in portals:
            portal.close()
