"""Practice-wide notices on the task queue (issue 12): the request that turns "require MFA" on
for a practice, and how long the queue takes to email every user without MFA.

On PostgreSQL, with the queue on Redis (a database number of its own, flushed before and after)
and the mail transport "outbox" (each notice is a row written in the same transaction as its
"sent once" claim, so the count is exact and no mail server competes for the 2 cores):

1. Practices of 1,000, 10,000 and 50,000 users, every fifth with Email MFA (so 80 % are emailed),
   seeded in bulk; a support account with an Authenticator App.
2. Through gunicorn (repository config, 2 workers) and a logged-in, confirmed support session:
   POST /support/practices/<id>/requirement on, then off, round after round over the sizes, no
   consumer running (the request only commits and enqueues the first batch task; the queue is
   flushed afterwards, so nothing is sent). Target: every "on" under 200 ms at every size.
3. Drain: with one consumer process (`flask queue work --workers 2`), then with two, turn the
   requirement on for the 50,000-user practice and time from the request to the last notice
   stored; then check every active user without MFA got exactly one notice (rows counted and
   compared by address), nothing is left in the queue and no task failed. The consumers' and
   PostgreSQL's CPU are read from /proc over the drain.
4. Per notice, in this process on the same database: rendering the email (CPU) and the notice's
   transaction (claim, outbox row, commit), and, for comparison, handing one message to a
   loopback SMTP sink as production's transport does (a new connection per message).

Every process started here is stopped by its own PID, also on failure; loopback only.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests
from sqlalchemy import create_engine, text

from bench import flows, seed
from bench.servers import CLOCK_TICKS, ROOT, Server, free_port

REDIS_URL = os.environ.get("BENCH_QUEUE_REDIS_URL", "redis://127.0.0.1:6379/12")
TARGET_MS = 200.0
FLAT_RATIO = 1.5
SUBJECT_NOW = "Your practice now requires multi-factor authentication"


# -- processes ---------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _postgres_cpu() -> dict[int, float]:
    """CPU of every process named postgres on this machine (the server runs here)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    found[int(entry.name)] = _cpu_seconds(int(entry.name))
            except OSError:
                continue
    return found


def _stop(process: subprocess.Popen, timeout: float = 20) -> None:
    """Stop one process we started, by its PID: SIGTERM, then SIGKILL."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


class Consumers:
    """`count` consumer processes, each `flask queue work --workers THREADS`."""

    def __init__(self, env: dict, count: int, threads: int, logdir: str, label: str):
        self.processes: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        for index in range(count):
            log = Path(logdir) / f"consumer-{label}-{index}.log"
            handle = log.open("wb")
            self.logs.append(log)
            self.processes.append(subprocess.Popen(
                [sys.executable, "-m", "flask", "queue", "work", "--workers", str(threads)],
                cwd=ROOT, env={**os.environ, **env}, stdout=handle, stderr=subprocess.STDOUT))
            handle.close()
        deadline = time.monotonic() + 60
        while not all("queue consumer running" in log.read_text(errors="replace") for log in self.logs):
            self.check()
            if time.monotonic() > deadline:
                raise RuntimeError("the queue consumers did not start")
            time.sleep(0.1)

    def check(self) -> None:
        for process, log in zip(self.processes, self.logs, strict=True):
            if process.poll() is not None:
                raise RuntimeError(f"a consumer exited ({process.returncode}):\n"
                                   + log.read_text(errors="replace")[-3000:])

    def cpu_seconds(self) -> float:
        return sum(_cpu_seconds(p.pid) for p in self.processes)  # a process's figure covers its threads

    def stop(self) -> None:
        for process in self.processes:
            _stop(process)


# -- the queue's Redis database ----------------------------------------------------------------


def _redis():
    from redis import Redis

    return Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=5)


def _flush_queue(connection) -> None:
    """Empty the bench's own Redis database; refuse if it holds anything but Huey's keys."""
    foreign = [key for key in connection.scan_iter(count=1000) if not key.startswith(b"huey.")]
    if foreign:
        raise RuntimeError(f"{REDIS_URL} holds keys that are not the bench's queue (e.g. {foreign[0]!r}); "
                           "set BENCH_QUEUE_REDIS_URL to an unused Redis database")
    connection.flushdb()


def _queue_left() -> tuple[int, int]:
    """Tasks still queued, and scheduled ones other than the audit trail's sealing passes (the
    consumer's periodic task schedules those every few seconds until the next minute)."""
    from huey.serializer import Serializer
    from huey.storage import RedisStorage

    storage = RedisStorage("portal", url=REDIS_URL)
    serializer = Serializer()
    scheduled = [serializer.deserialize(item).name for item in storage.scheduled_items()]
    return storage.queue_size(), sum(1 for name in scheduled if "seal_audit_trail" not in name)


# -- HTTP --------------------------------------------------------------------------------------


def _support_browser(base: str, secret: str, email: str) -> requests.Session:
    """Log in as support (password, TOTP code) and confirm at /support/confirm (password + code)."""
    import pyotp

    browser = requests.Session()
    page = browser.get(base + "/login")
    browser.post(base + "/login", data={"email": email, "password": seed.PASSWORD,
                                        "csrf_token": flows.token(page.text)})
    page = browser.get(base + "/login/code")
    totp = pyotp.TOTP(secret)
    response = browser.post(base + "/login/code", data={"code": totp.at(time.time() - 30),
                                                        "csrf_token": flows.token(page.text)}, allow_redirects=False)
    assert response.status_code == 303 and response.headers["Location"] == "/", "support Log In failed"
    page = browser.get(base + "/support/confirm")
    response = browser.post(base + "/support/confirm", data={
        "password": seed.PASSWORD, "code": totp.now(), "csrf_token": flows.token(page.text)}, allow_redirects=False)
    assert response.status_code == 303, "support confirmation failed"
    return browser


class Requirement:
    """Turn a practice's requirement on or off as support does, timing the POST alone."""

    def __init__(self, base: str, browser: requests.Session):
        self.base, self.browser = base, browser
        self.csrf = None

    def set(self, practice_id: int, on: bool) -> float:
        if self.csrf is None:
            self.csrf = flows.token(self.browser.get(f"{self.base}/support/practices/{practice_id}").text)
        data = {"required": "on" if on else "off", "reason": "bench", "csrf_token": self.csrf}
        if on:
            data["when"] = "now"
        url = f"{self.base}/support/practices/{practice_id}/requirement"
        # The first post shows what the change will do (untimed); the confirmation, with the token
        # of what was shown, makes it: that request is the one timed.
        preview = self.browser.post(url, data=data, allow_redirects=False)
        seen = re.search(r'name="seen" value="([^"]+)"', preview.text)
        assert preview.status_code == 200 and seen, (preview.status_code, preview.text[:300])
        started = time.perf_counter()
        response = self.browser.post(url, data={**data, "seen": html.unescape(seen.group(1))}, allow_redirects=False)
        elapsed = time.perf_counter() - started
        location = response.headers.get("Location", "")
        # A lapsed support confirmation also answers 303, to /support/confirm: check where it goes.
        assert response.status_code == 303 and location.endswith(f"/support/practices/{practice_id}"), (
            response.status_code, location, response.text[:300])
        return elapsed


def _stats(values: list[float]) -> dict:
    report = flows.percentiles(values)
    report["max_ms"] = round(max(values) * 1000, 2)
    return report


# -- the benchmark -----------------------------------------------------------------------------


def queue_benchmark(results: dict, workdir: str, *, sizes: list[int], drain_size: int, rounds: int,
                    consumer_counts: list[int], threads: int, batch_size: int, timeout: float) -> None:
    section = results.setdefault("queue", {})
    section.update({
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%MZ"), "database": "postgresql",
        "queue": f"Redis database {REDIS_URL.rsplit('/', 1)[-1]} ({REDIS_URL})", "mail_transport": "outbox",
        "users_with_mfa": "every fifth (20 %), Email", "batch_size": batch_size,
        "threads_per_consumer": threads, "target_ms": TARGET_MS,
    })
    url = seed.new_database("postgresql", workdir)
    redis = _redis()
    consumers: Consumers | None = None
    try:
        _flush_queue(redis)
        seed.migrate(url)
        app = seed.app_for(url)
        import pyotp

        practices = {}
        for size in sorted(set(sizes) | {drain_size}):
            practices[size] = seed.seed_practice(app, users=size, enrolled="fifth",
                                                 practice_name=f"Queue {size}")["practice_id"]
        support_secret = pyotp.random_base32()
        seed.add_account(app, email="support@queue.bench.test", role="support", practice_id=None,
                         totp_secret=support_secret)
        seed.settle(url)
        engine = create_engine(url)
        env = {**seed.server_env(url), "QUEUE_REDIS_URL": REDIS_URL, "QUEUE_BATCH_SIZE": str(batch_size),
               # One confirmation lasts the run (default 15 minutes; each POST checks where it went).
               "SUPPORT_CONFIRM_SECONDS": "7200"}
        with Server("wsgi:app", env) as server:
            browser = _support_browser(server.base, support_secret, "support@queue.bench.test")
            requirement = Requirement(server.base, browser)

            # 2. The request, at each size; no consumer runs, so only the first batch task is queued.
            print("  the request, at each size ...", file=sys.stderr)
            timings = {size: {"on": [], "off": []} for size in sizes}
            for round_ in range(rounds + 2):
                for size in sizes:
                    on = requirement.set(practices[size], True)
                    off = requirement.set(practices[size], False)
                    if round_ >= 2:  # two warm-up rounds, not timed
                        timings[size]["on"].append(on)
                        timings[size]["off"].append(off)
            _flush_queue(redis)
            section["request"] = {}
            for size in sizes:
                section["request"][str(size)] = {
                    "users": size, "without_mfa": _without_mfa(engine, practices[size]),
                    "on": _stats(timings[size]["on"]), "off": _stats(timings[size]["off"])}
            small, large = section["request"][str(min(sizes))], section["request"][str(max(sizes))]
            section["flat_ratio_p50"] = round(large["on"]["p50_ms"] / small["on"]["p50_ms"], 2)

            # 3. The drain, with one then two consumer processes.
            section["drain"] = {}
            for count in consumer_counts:
                print(f"  drain of {drain_size:,} users with {count} consumer(s) ...", file=sys.stderr)
                _reset_notices(engine)
                _flush_queue(redis)
                consumers = Consumers(env, count, threads, workdir, f"{count}")
                section["drain"][str(count)] = _drain(engine, requirement, consumers, practices[drain_size],
                                                      url.rsplit("/", 1)[1], timeout, count * threads)
                consumers.stop()
                consumers = None
                requirement.set(practices[drain_size], False)  # for the next run; its notices are flushed
                _flush_queue(redis)

        # 4. Per notice, in this process.
        print("  per notice, in-process ...", file=sys.stderr)
        _reset_notices(engine)
        section["per_notice"] = _per_notice(app, practices[drain_size])
        _reset_notices(engine)
        section["smtp_per_message"] = _smtp_per_message(app)
        engine.dispose()
    finally:
        if consumers is not None:
            consumers.stop()
        try:
            _flush_queue(redis)
        finally:
            redis.close()
            seed.drop_database(url)


def _without_mfa(engine, practice_id: int) -> int:
    with engine.connect() as connection:
        return connection.execute(text(
            "SELECT count(*) FROM users u WHERE u.practice_id = :p AND u.active "
            "AND NOT EXISTS (SELECT 1 FROM mfa_enrollments e WHERE e.user_id = u.id)"), {"p": practice_id}).scalar()


def _reset_notices(engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE outbox_messages, sent_notices RESTART IDENTITY"))


def _drain(engine, requirement: Requirement, consumers: Consumers, practice_id: int, database: str,
           timeout: float, threads: int) -> dict:
    expected = _without_mfa(engine, practice_id)
    postgres_before = _postgres_cpu()
    consumers_before = consumers.cpu_seconds()
    started_wall = time.time()
    started = time.perf_counter()
    request_seconds = requirement.set(practice_id, True)
    stored = 0
    with engine.connect() as connection:
        while True:
            stored = connection.execute(text("SELECT count(*) FROM outbox_messages")).scalar()
            connection.commit()
            if stored >= expected:
                break
            consumers.check()
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"the queue did not drain in {timeout:.0f} s: {stored:,} of {expected:,} stored")
            time.sleep(0.2)
        seen_seconds = time.perf_counter() - started
        # Let anything still running finish, then check the queue is empty and count again.
        deadline = time.monotonic() + 30
        while _queue_left() != (0, 0) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)
        left = _queue_left()
        consumer_cpu = consumers.cpu_seconds() - consumers_before
        ours = [row[0] for row in connection.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid()"), {"d": database})]
        postgres_after = _postgres_cpu()
        row = connection.execute(text(
            "SELECT count(*), count(DISTINCT recipient), min(created_at), max(created_at) FROM outbox_messages "
            "WHERE channel = 'email' AND subject = :s"), {"s": SUBJECT_NOW}).one()
        others = connection.execute(text("SELECT count(*) FROM outbox_messages WHERE subject <> :s"),
                                    {"s": SUBJECT_NOW}).scalar()
        missing = connection.execute(text(
            "SELECT count(*) FROM users u WHERE u.practice_id = :p AND u.active "
            "AND NOT EXISTS (SELECT 1 FROM mfa_enrollments e WHERE e.user_id = u.id) "
            "AND NOT EXISTS (SELECT 1 FROM outbox_messages o WHERE o.recipient = u.email)"),
            {"p": practice_id}).scalar()
        unexpected = connection.execute(text(
            "SELECT count(*) FROM outbox_messages o WHERE NOT EXISTS (SELECT 1 FROM users u "
            "WHERE u.email = o.recipient AND u.practice_id = :p AND u.active "
            "AND NOT EXISTS (SELECT 1 FROM mfa_enrollments e WHERE e.user_id = u.id))"), {"p": practice_id}).scalar()
        claims = connection.execute(text("SELECT count(*) FROM sent_notices WHERE key LIKE 'practice:%'")).scalar()
        failed = connection.execute(text("SELECT count(*) FROM failed_tasks")).scalar()
        deferred = connection.execute(text("SELECT count(*) FROM deferred_tasks")).scalar()
    total, distinct, first, last = row
    first_s = first.timestamp() - started_wall
    last_s = last.timestamp() - started_wall
    postgres_cpu = sum(postgres_after[pid] - postgres_before.get(pid, 0.0) for pid in ours if pid in postgres_after)
    postgres_all = sum(cpu - postgres_before.get(pid, 0.0) for pid, cpu in postgres_after.items())
    return {
        "consumer_processes": len(consumers.processes), "worker_threads": threads, "users_without_mfa": expected,
        "request_ms": round(request_seconds * 1000, 2),
        "first_notice_s": round(first_s, 2),
        "drain_s": round(last_s, 2),  # from the request's start to the last notice stored
        "seen_by_poll_s": round(seen_seconds, 2),
        "notices_per_s": round(total / last_s, 1),
        "notices_per_s_steady": round((total - 1) / (last_s - first_s), 1) if last_s > first_s else None,
        "notices": total, "distinct_recipients": distinct, "missing": missing, "unexpected": unexpected,
        "other_messages": others, "claims": claims, "failed_tasks": failed, "deferred_tasks": deferred,
        "queue_left": {"queued": left[0], "scheduled": left[1]},
        "exactly_once": total == distinct == expected == claims and missing == 0 and unexpected == 0
        and others == 0 and failed == 0 and left == (0, 0),
        "consumer_cpu_ms_per_notice": round(consumer_cpu / total * 1000, 2),
        "postgres_cpu_ms_per_notice": round(postgres_cpu / total * 1000, 2),
        "postgres_all_cpu_ms_per_notice": round(postgres_all / total * 1000, 2),
        "wall_ms_per_notice_per_thread": round(last_s * threads / total * 1000, 2),
        "machine_busy_share": round((consumer_cpu + postgres_all) / (last_s * (os.cpu_count() or 1)), 2),
    }


def _per_notice(app, practice_id: int, count: int = 400) -> dict:
    """Where a notice's time goes, one at a time in this process: render (CPU), then the
    transaction the task runs (claim, outbox row, commit) with the message already rendered."""
    from sqlalchemy import delete

    from portal.delivery import outbox, render_email
    from portal.extensions import db
    from portal.models import OutboxMessage, SentNotice
    from portal.tasks import jobs

    with app.app_context():
        rows = db.session.execute(jobs._WITHOUT_MFA, {"practice_id": practice_id, "after": 0, "size": count}).all()
        db.session.rollback()
        context = {"practice_name": f"Queue {practice_id}", "starts": None, "kind": "now"}
        for row in rows[:20]:  # warm the template cache
            render_email(row.email, SUBJECT_NOW, "mfa_required", user={"display_name": row.display_name}, **context)
        wall, cpu = time.perf_counter(), time.process_time()
        messages = [render_email(row.email, SUBJECT_NOW, "mfa_required", user={"display_name": row.display_name},
                                 **context) for row in rows]
        render = ((time.perf_counter() - wall) / len(rows), (time.process_time() - cpu) / len(rows))
        per_transaction = []
        cpu = time.process_time()
        for index, message in enumerate(messages):
            one = time.perf_counter()
            jobs._once(f"bench-micro:{index}", lambda message=message: outbox.store_email(message))
            per_transaction.append(time.perf_counter() - one)
        transaction_cpu = (time.process_time() - cpu) / len(rows)
        db.session.execute(delete(OutboxMessage))
        db.session.execute(delete(SentNotice).where(SentNotice.key.like("bench-micro:%")))
        db.session.commit()
    return {
        "notices": len(rows),
        "render_wall_ms": round(render[0] * 1000, 3), "render_cpu_ms": round(render[1] * 1000, 3),
        "transaction_wall_ms_p50": round(statistics.median(per_transaction) * 1000, 3),
        "transaction_wall_ms_mean": round(statistics.fmean(per_transaction) * 1000, 3),
        "transaction_cpu_ms": round(transaction_cpu * 1000, 3),
        "message_bytes": round(statistics.fmean(len(m.text) + len(m.html or "") for m in messages)),
    }


def _smtp_per_message(app, count: int = 200) -> dict:
    """Production's transport for comparison: each message handed to a loopback SMTP sink
    (aiosmtpd in its own process), on a new connection as Flask-Mail makes one per message."""
    from portal.delivery import render_email, smtp

    port = free_port()
    sink = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
                             "-c", "aiosmtpd.handlers.Sink"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        import smtplib

        deadline = time.monotonic() + 20
        while True:
            try:
                smtplib.SMTP("127.0.0.1", port, timeout=2).quit()
                break
            except OSError:
                if sink.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the SMTP sink did not start: "
                                       + sink.stderr.read().decode(errors="replace")[-500:]) from None
                time.sleep(0.1)
        saved = {key: app.config[key] for key in ("MAIL_SERVER", "MAIL_PORT")}
        mail = app.extensions["mail"]
        saved_mail = (mail.server, mail.port, mail.suppress)
        app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=port)
        mail.server, mail.port, mail.suppress = "127.0.0.1", port, False
        try:
            with app.app_context():
                message = render_email("someone@queue.bench.test", SUBJECT_NOW, "mfa_required",
                                       user={"display_name": "Someone"}, practice_name="Queue", starts=None,
                                       kind="now")
                for _ in range(10):
                    smtp.send(message)
                times = []
                cpu = time.process_time()
                for _ in range(count):
                    one = time.perf_counter()
                    smtp.send(message)
                    times.append(time.perf_counter() - one)
                cpu = (time.process_time() - cpu) / count
        finally:
            app.config.update(saved)
            mail.server, mail.port, mail.suppress = saved_mail
    finally:
        _stop(sink, timeout=10)
    return {"messages": count, "wall_ms_p50": round(statistics.median(times) * 1000, 3),
            "wall_ms_mean": round(statistics.fmean(times) * 1000, 3), "sender_cpu_ms": round(cpu * 1000, 3)}


# -- reporting ---------------------------------------------------------------------------------


def verdicts(results: dict) -> list[dict]:
    section = results.get("queue")
    if not section or "request" not in section:
        return []
    rows = []
    for size, data in section["request"].items():
        slowest = data["on"]["max_ms"]
        rows.append(dict(target=f"queue: turning the requirement on, {int(size):,} users: slowest of "
                                f"{data['on']['n']} < {TARGET_MS:.0f} ms",
                         figure=f"{slowest} ms", passed=slowest < TARGET_MS))
    rows.append(dict(target=f"queue: the request is flat (p50 at {max(map(int, section['request'])):,} vs "
                            f"{min(map(int, section['request'])):,} users <= {FLAT_RATIO}x)",
                     figure=f"{section['flat_ratio_p50']}x", passed=section["flat_ratio_p50"] <= FLAT_RATIO))
    for count, data in section.get("drain", {}).items():
        rows.append(dict(target=f"queue: {count} consumer(s), every user without MFA got exactly one notice",
                         figure=f"{data['distinct_recipients']:,} of {data['users_without_mfa']:,}, "
                                f"{data['notices'] - data['distinct_recipients']} duplicates, "
                                f"{data['missing']} missing",
                         passed=data["exactly_once"]))
    return rows


def markdown(results: dict) -> str:
    section = results.get("queue")
    if not section or "request" not in section:
        return ""
    lines = [f"Run {section['date']} on {results.get('machine', 'this machine')}: PostgreSQL, queue on "
             f"{section['queue']}, mail transport \"{section['mail_transport']}\", users with MFA: "
             f"{section['users_with_mfa']}, {section['batch_size']} users per batch task.", "",
             "| Target | Figure | Result |", "|---|---|---|"]
    for row in verdicts(results):
        lines.append(f"| {row['target']} | {row['figure']} | {'pass' if row['passed'] else 'FAIL'} |")
    lines += ["", "**Turning the requirement on (and off), support's POST through gunicorn, no consumer running**",
              "", "| Practice | Users emailed | On: p50 ms | On: p95 ms | On: max ms | Off: p50 ms | Off: max ms |",
              "|---|---|---|---|---|---|---|"]
    for size, data in section["request"].items():
        lines.append(f"| {int(size):,} users | {data['without_mfa']:,} | {data['on']['p50_ms']} | "
                     f"{data['on']['p95_ms']} | {data['on']['max_ms']} | {data['off']['p50_ms']} | "
                     f"{data['off']['max_ms']} |")
    drains = section.get("drain", {})
    if drains:
        lines += ["", "**Draining the notices of the largest practice** (from the request's start to the last "
                      "notice stored)", "",
                  "| Consumers | Notices | Total s | Notices/s | First notice s | Consumer CPU ms/notice | "
                  "PostgreSQL CPU ms/notice | Wall ms/notice per thread | Machine busy | Exactly once |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for count, data in drains.items():
            lines.append(
                f"| {count} × `--workers {section['threads_per_consumer']}` | {data['notices']:,} | "
                f"{data['drain_s']} | {data['notices_per_s']} | {data['first_notice_s']} | "
                f"{data['consumer_cpu_ms_per_notice']} | {data['postgres_cpu_ms_per_notice']} "
                f"({data['postgres_all_cpu_ms_per_notice']} all) | {data['wall_ms_per_notice_per_thread']} | "
                f"{data['machine_busy_share']:.0%} | {'yes' if data['exactly_once'] else 'NO'} |")
    per = section.get("per_notice")
    if per:
        smtp = section.get("smtp_per_message", {})
        lines += ["", f"**Per notice, one at a time in-process**: rendering {per['render_cpu_ms']} ms CPU "
                      f"({per['message_bytes']:,} bytes, text and HTML); the task's transaction (claim, outbox "
                      f"row, commit) {per['transaction_wall_ms_p50']} ms p50 wall, {per['transaction_cpu_ms']} ms "
                      "CPU in the process."
                  + (f" Production's SMTP hand-over instead of the outbox row, to a loopback aiosmtpd sink on a new "
                     f"connection per message: {smtp['wall_ms_p50']} ms p50 wall, {smtp['sender_cpu_ms']} ms "
                     "sender CPU." if smtp else "")]
    return "\n".join(lines) + "\n"
