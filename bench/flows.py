"""HTTP drivers: a browser's requests, timed per step, from several concurrent clients."""

from __future__ import annotations

import re
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pyotp
import requests

TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def token(html: str) -> str:
    match = TOKEN.search(html)
    if not match:
        raise AssertionError("no CSRF token on the page")
    return match.group(1)


def percentiles(values: list[float]) -> dict:
    if not values:
        return {}
    ordered = sorted(values)

    def pick(p):
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

    return {"n": len(values), "p50_ms": round(pick(50) * 1000, 2), "p90_ms": round(pick(90) * 1000, 2),
            "p95_ms": round(pick(95) * 1000, 2), "p99_ms": round(pick(99) * 1000, 2),
            "mean_ms": round(statistics.fmean(values) * 1000, 2)}


class Timings:
    def __init__(self):
        self.lock = threading.Lock()
        self.steps: dict[str, list[float]] = {}

    def timed(self, step: str, call):
        started = time.perf_counter()
        response = call()
        elapsed = time.perf_counter() - started
        with self.lock:
            self.steps.setdefault(step, []).append(elapsed)
        return response

    def report(self) -> dict:
        return {step: percentiles(values) for step, values in self.steps.items()}


def login_flow(base: str, email: str, password: str, code_for, timings: Timings, *,
               code_path: str = "/login/code") -> None:
    """The five requests a browser makes: Log In page, password, code page, code, dashboard.
    `code_path` is where the password step sends the browser (the peer's is /tf-validate)."""
    browser = requests.Session()
    page = timings.timed("1 GET /login", lambda: browser.get(base + "/login"))
    response = timings.timed("2 POST password", lambda: browser.post(
        base + "/login", data={"email": email, "password": password, "csrf_token": token(page.text)},
        allow_redirects=False))
    assert response.status_code in (302, 303) and response.headers["Location"].startswith(code_path), (
        response.status_code, response.headers.get("Location"))
    code_url = base + response.headers["Location"]
    page = timings.timed("3 GET code page", lambda: browser.get(code_url))
    code = code_for(email)
    response = timings.timed("4 POST code", lambda: browser.post(
        code_url.split("?")[0], data={"code": code, "csrf_token": token(page.text)}, allow_redirects=False))
    assert response.status_code in (302, 303) and response.headers["Location"] == "/", (
        response.status_code, response.text[:300])
    dashboard = timings.timed("5 GET dashboard", lambda: browser.get(base + "/"))
    assert "Dashboard" in dashboard.text


def run_logins(base: str, accounts: list[str], password: str, code_for, clients: int, *,
               code_path: str = "/login/code") -> tuple[Timings, float]:
    timings = Timings()
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(login_flow, base, email, password, code_for, timings, code_path=code_path)
                       for email in accounts]:
            future.result()
    return timings, time.perf_counter() - started


def totp_code_for(secrets: dict):
    return lambda email: pyotp.TOTP(secrets[email]).now()


def hammer(base: str, path: str, count: int, clients: int) -> tuple[dict, float]:
    """`count` GETs of one path from `clients` keep-alive clients."""
    timings = Timings()
    local = threading.local()

    def one(_):
        if not hasattr(local, "session"):
            local.session = requests.Session()
        timings.timed(path, lambda: local.session.get(base + path))

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(count)))
    elapsed = time.perf_counter() - started
    return {**timings.report()[path], "requests_per_s": round(count / elapsed, 1)}, elapsed


def prepare_pending(base: str, email: str, password: str, *,
                    code_path: str = "/login/code") -> tuple[requests.Session, str, str]:
    """A browser past the password step: (session, the code page's URL, its CSRF token)."""
    browser = requests.Session()
    page = browser.get(base + "/login")
    response = browser.post(base + "/login",
                            data={"email": email, "password": password, "csrf_token": token(page.text)},
                            allow_redirects=False)
    assert response.status_code in (302, 303) and response.headers["Location"].startswith(code_path)
    code_url = base + response.headers["Location"]
    page = browser.get(code_url)
    # The burst comes after every browser is prepared, long after the server closed this idle
    # keep-alive connection (gunicorn: 2 s); one closed just as the POST goes out fails it. The
    # POST opens a fresh connection instead (the session keeps its cookies).
    browser.close()
    return browser, code_url.split("?")[0], token(page.text)  # the form posts to the path (the peer adds ?next=)


def code_burst(pending: list[tuple[requests.Session, str, str, str]], clients: int) -> tuple[dict, float]:
    """Code POSTs from pending logins, `clients` at a time: (session, code URL, CSRF token, code)."""
    timings = Timings()

    def one(item):
        browser, code_url, csrf, code = item
        response = timings.timed("POST code", lambda: browser.post(
            code_url, data={"code": code, "csrf_token": csrf}, allow_redirects=False))
        assert response.status_code in (302, 303) and response.headers["Location"] == "/", response.status_code

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, pending))
    elapsed = time.perf_counter() - started
    return {**timings.report()["POST code"], "requests_per_s": round(len(pending) / elapsed, 1)}, elapsed
