"""/metrics for the people who run the portal, and the log lines they read.

Counters live for the whole test run (one process, one registry), so every test reads a value
before and after what it does and checks the difference.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from portal import metrics
from portal.enforcement import requirement
from tests.factories import PASSWORD, make_enrollment, make_practice, make_user
from tests.functional.mfa_helpers import last_code
from tests.production_env import production_settings
from tests.smtp_server import free_port

ROOT = Path(__file__).resolve().parents[2]
E164 = "+12025550143"
OUTSIDER = {"REMOTE_ADDR": "203.0.113.9"}


def scrape(client, **kwargs) -> str:
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.status_code
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return response.get_data(as_text=True)


def value_in(text: str, name: str, **labels) -> float:
    """The sample `name` with exactly `labels` in a scrape (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def value(client, name: str, **labels) -> float:
    return value_in(scrape(client), name, **labels)


LOGINS = "portal_login_outcomes_total"


@pytest.fixture
def email_user(clock):
    user = make_user("metrics-email@example.test")
    make_enrollment(user, "email")
    return user


def test_a_login_is_counted_by_outcome_and_method(client, auth, outbox, email_user):
    """Does one Log In of an email-method user add exactly one "code needed" and, after the
    code, one "signed in", both under method "email", and one email code sent?"""
    needed = value(client, LOGINS, outcome="code_needed", method="email")
    signed_in = value(client, LOGINS, outcome="signed_in", method="email")
    sent = value(client, "portal_codes_sent_total", channel="email")
    assert auth.login(email_user.email, PASSWORD).headers["Location"] == "/login/code"
    assert value(client, LOGINS, outcome="code_needed", method="email") == needed + 1
    assert value(client, "portal_codes_sent_total", channel="email") == sent + 1
    assert value(client, LOGINS, outcome="signed_in", method="email") == signed_in
    assert auth.enter_code(last_code(outbox, email_user.email, "email")).status_code == 303
    assert value(client, LOGINS, outcome="signed_in", method="email") == signed_in + 1
    assert value(client, LOGINS, outcome="code_needed", method="email") == needed + 1


def test_failed_passwords_wrong_codes_and_locks_are_counted(app, make_app, clock, outbox, email_user):
    """A wrong password, a wrong code, and the lock at the limit (then a refused Log In)."""
    strict = make_app(PASSWORD_MAX_FAILURES=2)
    client = strict.test_client()

    def log_in(password):
        return client.post("/login", data={"email": email_user.email, "password": password})

    before = scrape(client)
    assert log_in(PASSWORD).status_code == 303
    wrong = f"{(int(last_code(outbox, email_user.email, 'email')) + 1) % 1_000_000:06d}"
    assert client.post("/login/code", data={"code": wrong}).status_code == 400
    assert log_in("not the password").status_code == 401
    assert log_in("still not the password").status_code == 401  # the second failure locks
    assert log_in(PASSWORD).status_code == 401  # locked: even the right password is refused
    after = scrape(client)

    def delta(name, **labels):
        return value_in(after, name, **labels) - value_in(before, name, **labels)

    assert delta(LOGINS, outcome="code_failed", method="email") == 1
    assert delta(LOGINS, outcome="password_failed", method="none") == 1
    assert delta(LOGINS, outcome="locked", method="none") == 2  # the attempt that locked, and the next
    assert delta("portal_account_locks_total", factor="password") == 1
    assert delta("portal_account_locks_total", factor="code") == 0


def test_a_throttled_send_is_counted_and_the_code_page_counts_nothing(client, auth, email_user, clock):
    """Two "click here" resends inside the 30 s cooldown: the second is refused and counted
    once; showing the code page (which asks when a resend works again) counts nothing."""
    auth.login(email_user.email, PASSWORD)
    clock.advance(seconds=31)
    throttled = value(client, "portal_code_sends_throttled_total", reason="cooldown")
    sent = value(client, "portal_codes_sent_total", channel="email")
    assert client.post("/login/code/resend").status_code == 303
    assert client.post("/login/code/resend").status_code == 303  # refused: flashed on the code page
    assert "You can ask for a new one in" in client.get("/login/code").get_data(as_text=True)
    assert client.get("/login/code").status_code == 200
    assert value(client, "portal_code_sends_throttled_total", reason="cooldown") == throttled + 1
    assert value(client, "portal_codes_sent_total", channel="email") == sent + 1


def test_a_failed_delivery_is_counted_by_channel(client, auth, email_user, monkeypatch):
    from portal.delivery import DeliveryError
    from portal.mfa import messages

    def refuse(destination, code):
        raise DeliveryError("provider down")

    monkeypatch.setitem(messages._CODE_SENDERS, "email", refuse)
    failed = value(client, "portal_code_delivery_failures_total", channel="email")
    sent = value(client, "portal_codes_sent_total", channel="email")
    auth.login(email_user.email, PASSWORD)
    assert value(client, "portal_code_delivery_failures_total", channel="email") == failed + 1
    assert value(client, "portal_codes_sent_total", channel="email") == sent


def test_support_actions_are_counted(client, clock):
    practice = make_practice(mfa_required=True)
    admin = make_user(role="practice_admin", practice=practice)
    support = make_user(role="support")
    before = scrape(client)
    requirement.set_requirement(practice, False, actor=support, reason="Ticket 1: pilot over", now=clock.now())
    request = requirement.make_request(admin, require=True, note="Please", now=clock.now())
    requirement.decide(request, actor=support, approve=False, note="Not yet", now=clock.now())
    after = scrape(client)
    for action, expected in (("requirement_changed", 1), ("request_decided", 1), ("cleared_mfa", 0)):
        name = "portal_support_actions_total"
        assert value_in(after, name, action=action) - value_in(before, name, action=action) == expected, action


def test_the_output_never_shows_an_email_a_phone_number_or_a_code(client, auth, outbox, clock):
    user = make_user("metrics-sms@example.test")
    make_enrollment(user, "sms", phone=E164)
    auth.login(user.email, PASSWORD)
    code = last_code(outbox, E164, "sms")
    auth.enter_code(code)
    body = scrape(client)
    assert "portal_login_outcomes_total" in body and 'method="sms"' in body
    # The text without the samples' values: a value is a number the portal counted or timed (a
    # start time of 1.766966678601432e+09 holds "0143" by chance), never a person's data.
    text = "\n".join(line if line.startswith("#") else line.rsplit(" ", 1)[0] for line in body.splitlines())
    for secret in (user.email, "example.test", E164, "2025550143", "0143", code):
        assert secret not in text, secret
    # Only fixed label names appear; none could carry a person's data.
    names = {name for family in text_string_to_metric_families(body) for sample in family.samples
             for name in sample.labels}
    assert names <= {"outcome", "method", "channel", "reason", "factor", "action", "task", "generation",
                     "implementation", "major", "minor", "patchlevel", "version"}


def test_a_disallowed_address_gets_the_usual_404(client):
    response = client.get("/metrics", environ_overrides=OUTSIDER)
    assert response.status_code == 404
    assert "We could not find that page." in response.get_data(as_text=True)
    assert "portal_" not in response.get_data(as_text=True)
    assert client.get("/metrics", environ_overrides={"REMOTE_ADDR": "::1"}).status_code == 200
    assert client.get("/metrics", environ_overrides={"REMOTE_ADDR": "::ffff:127.0.0.1"}).status_code == 200
    assert client.get("/metrics", environ_overrides={"REMOTE_ADDR": "127.0.0.2"}).status_code == 404


def test_the_allowed_networks_are_configurable_and_checked_at_start_up(app, make_app):
    monitoring = make_app(METRICS_ALLOWED_NETWORKS=["203.0.113.0/24"]).test_client()
    assert monitoring.get("/metrics", environ_overrides=OUTSIDER).status_code == 200
    assert monitoring.get("/metrics").status_code == 404  # loopback is no longer listed
    with pytest.raises(RuntimeError, match="METRICS_ALLOWED_NETWORKS"):
        make_app(METRICS_ALLOWED_NETWORKS=["203.0.113.0/33"])


def test_metrics_are_exempt_from_the_https_redirect_like_the_health_checks(app, make_app):
    plain = make_app(REQUIRE_HTTPS=True).test_client()
    assert plain.get("/login").status_code == 308
    assert plain.get("/metrics").status_code == 200
    assert plain.get("/metrics", environ_overrides=OUTSIDER).status_code == 404


def test_queue_depth_is_read_at_scrape_time_and_failed_tasks_are_counted(client, monkeypatch):
    monkeypatch.setattr(metrics, "_queue_depth_source", metrics._queue_depth_source)  # restored afterwards
    depth = [3]
    metrics.set_queue_depth_source(lambda: depth[0])
    body = scrape(client)
    assert value_in(body, "portal_task_queue_depth") == 3 and value_in(body, "portal_task_queue_up") == 1
    depth[0] = 7
    assert value(client, "portal_task_queue_depth") == 7
    metrics.set_queue_depth_source(lambda: None)  # unreachable
    body = scrape(client)
    assert "portal_task_queue_depth" not in body and value_in(body, "portal_task_queue_up") == 0

    def broken():
        raise ConnectionError("redis is down")

    metrics.set_queue_depth_source(broken)
    assert value(client, "portal_task_queue_up") == 0
    failed = value(client, "portal_tasks_failed_total", task="send_notice")
    other = value(client, "portal_tasks_failed_total", task="other")
    metrics.task_failed("send_notice")
    metrics.task_failed("someone@example.test")  # never a label value
    assert value(client, "portal_tasks_failed_total", task="send_notice") == failed + 1
    assert value(client, "portal_tasks_failed_total", task="other") == other + 1


def test_label_values_outside_the_fixed_sets_are_refused(app):
    with pytest.raises(ValueError):
        metrics.login("signed_in", "someone@example.test")
    with pytest.raises(ValueError):
        metrics.send_throttled("because")
    with pytest.raises(ValueError):
        metrics.code_sent("+12025550143")


# -- logs ------------------------------------------------------------------------------------


def test_json_logs_give_one_object_per_request_without_an_email(app, make_app, capsys, clock):
    """With LOG_FORMAT=json (production's default), is a request one parseable JSON line with
    its route (the endpoint, not the path), status, duration, request id and user id?"""
    user = make_user("json-log@example.test")
    client = make_app(LOG_FORMAT="json").test_client()
    capsys.readouterr()
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 303
    client.get("/reset-password/SECRET-TOKEN-VALUE")
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    access = [entry for entry in entries if entry["logger"] == "portal.access"]
    assert len(access) == 2
    login, reset = access
    assert login["route"] == "auth.login" and login["method"] == "POST" and login["status"] == 303
    assert isinstance(login["duration_ms"], float) and login["duration_ms"] >= 0
    assert login["request_id"] == response.headers["X-Request-ID"]
    assert login["user_id"] == user.id and login["level"] == "INFO" and login["time"].endswith("+00:00")
    assert reset["route"] == "auth.reset_password" and reset["status"] == 400  # the endpoint, not the path
    assert user.email not in err and "json-log" not in err and PASSWORD not in err
    assert "SECRET-TOKEN-VALUE" not in err


def test_text_logs_outside_production(app, make_app, capsys, clock):
    client = make_app().test_client()
    capsys.readouterr()
    response = client.get("/login")
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if "portal.access" in line)
    assert not line.startswith("{")
    assert "GET auth.login 200" in line and f"request_id={response.headers['X-Request-ID']}" in line
    assert "duration_ms=" in line


def test_an_unknown_log_format_refuses_to_start(app, make_app):
    with pytest.raises(RuntimeError, match="LOG_FORMAT"):
        make_app(LOG_FORMAT="xml")


# -- gunicorn --------------------------------------------------------------------------------


def test_gunicorn_config_gives_each_start_a_fresh_metrics_directory():
    """Unset, PROMETHEUS_MULTIPROC_DIR becomes a new empty directory before workers fork."""
    env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    script = ("import os, runpy; hooks = runpy.run_path('gunicorn.conf.py'); assert callable(hooks['child_exit']); "
              "path = os.environ['PROMETHEUS_MULTIPROC_DIR']; print(path, os.listdir(path))")
    first = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=60, check=True).stdout.split()
    second = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60, check=True).stdout.split()
    assert first[1:] == ["[]"] and first[0] != second[0]
    env["PROMETHEUS_MULTIPROC_DIR"] = "/chosen/by/the/operator"
    chosen = subprocess.run([sys.executable, "-c", "import os, runpy; runpy.run_path('gunicorn.conf.py'); "
                             "print(os.environ['PROMETHEUS_MULTIPROC_DIR'])"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True)
    assert chosen.stdout.strip() == "/chosen/by/the/operator"
    for path in (first[0], second[0]):
        os.rmdir(path)


@pytest.mark.server
def test_two_gunicorn_workers_report_one_total(app, database_uri, tmp_path):
    """Under gunicorn with two workers, does every scrape, whichever worker answers it, show
    the Log Ins of both workers added up? (`app` empties the tables the server wrote to.)"""
    from tests.functional.test_server import wait_for

    port = free_port()
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    env = {
        **os.environ,
        **production_settings(database_uri),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        "TRUSTED_PROXY_COUNT": "1",
        "FORWARDED_ALLOW_IPS": "127.0.0.1",  # the proxy is this test, on loopback
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
    }
    env.pop("DEV_OUTBOX", None)
    env.pop("LOG_FORMAT", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    secure = {"X-Forwarded-Proto": "https"}  # as behind a TLS-terminating proxy; no X-Forwarded-For

    def failed_login(n: int) -> None:
        page = urllib.request.urlopen(urllib.request.Request(f"{base}/login", headers=secure), timeout=10)
        cookie = page.headers["Set-Cookie"].split(";", 1)[0]
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.read().decode()).group(1)
        form = urllib.parse.urlencode({"csrf_token": token, "email": f"nobody{n}@example.com",
                                       "password": "not the password"}).encode()
        headers = {**secure, "Cookie": cookie, "Referer": f"https://127.0.0.1:{port}/login"}
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(f"{base}/login", data=form, headers=headers), timeout=10)
        assert refused.value.code == 401

    try:
        wait_for(f"{base}/healthz", process)
        before = urllib.request.urlopen(f"{base}/metrics", timeout=10).read().decode()
        for n in range(6):
            failed_login(n)
        totals = set()
        for _ in range(8):
            text = urllib.request.urlopen(f"{base}/metrics", timeout=10).read().decode()
            totals.add(value_in(text, LOGINS, outcome="password_failed", method="none")
                       - value_in(before, LOGINS, outcome="password_failed", method="none"))
        assert totals == {6}
        workers = {path.name for path in multiproc.iterdir() if path.name.startswith("counter_")}
        assert len(workers) >= 2, workers  # each worker wrote its own counts
    finally:
        process.terminate()
        process.wait(timeout=10)
    log = process.stdout.read().decode(errors="replace")
    lines = [line for line in log.splitlines() if line.strip()]
    assert lines and all(line.startswith("{") for line in lines), lines[:5]  # JSON in production
    for line in lines:
        json.loads(line)
    assert "nobody" not in log
