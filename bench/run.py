"""`make bench`: how fast the portal lets people in, how its review pages scale, and how the
task queue sends a practice's notices.

Runs gunicorn (repository config, 2 workers) on SQLite and on PostgreSQL, drives it over HTTP
with several concurrent clients and fixed counts, reads the workers' CPU time from /proc, and
writes bench/results/<date>.json plus a markdown table (also into bench/README.md).
Loopback only; every loop is bounded. `--only queue` (or floors, logins, scale) runs some
sections; a partial run is merged into the day's results file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path

import requests
from sqlalchemy import create_engine, event, text

from bench import flows, notices, search, seed
from bench.servers import ROOT, Server

RESULTS = ROOT / "bench" / "results"
README = ROOT / "bench" / "README.md"
TARGETS = {
    "login_cpu_ms": 8.0,          # per full login beyond one argon2 verify
    "code_cpu_ms": 4.0,           # per code POST
    "code_vs_bare": 0.10,         # code-POST throughput as a share of the bare route's
    "scale_p95_ratio": 1.5,       # large vs small review/audit p95
    "csv_memory_mb": 50.0,        # worker memory growth exporting 50,000 rows
}


def floors(results: dict) -> None:
    """Costs no portal code can go below: argon2 verify, TOTP verify, a bare Flask route."""
    import pyotp
    from argon2 import PasswordHasher

    hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
    hashed = hasher.hash(seed.PASSWORD)
    started = time.process_time()
    for _ in range(20):
        hasher.verify(hashed, seed.PASSWORD)
    results["argon2_verify_cpu_ms"] = round((time.process_time() - started) / 20 * 1000, 2)
    totp = pyotp.TOTP(pyotp.random_base32())
    started = time.process_time()
    for _ in range(2000):
        totp.verify(totp.now())
    results["totp_verify_cpu_ms"] = round((time.process_time() - started) / 2000 * 1000, 4)
    report, argon2_ms = served_floors()
    results["bare_route"] = report
    results["argon2_verify_worker_cpu_ms"] = round(argon2_ms, 2)


def served_floors(bare_requests: int = 3000, argon2_requests: int = 300) -> tuple[dict, float]:
    """The bare route served by the portal's gunicorn settings (its report, with the worker's
    CPU per request), and one argon2id verify as such a worker pays it with 4 clients, less the
    bare route: the figure subtracted from a login's CPU (under concurrent load, as in the
    login runs, a worker's verify costs more than a tight loop's)."""
    with Server("bench.hello_app:app", {"PYTHONPATH": str(ROOT)}) as server:
        flows.hammer(server.base, "/hello", 300, 4)  # warm up
        before = server.cpu_seconds()
        report, _ = flows.hammer(server.base, "/hello", bare_requests, 8)
        report["worker_cpu_ms_per_request"] = round((server.cpu_seconds() - before) / bare_requests * 1000, 3)
        flows.hammer(server.base, "/argon2", 20, 4)
        before = server.cpu_seconds()
        flows.hammer(server.base, "/argon2", argon2_requests, 4)
        per_request = (server.cpu_seconds() - before) / argon2_requests * 1000
    return report, per_request - report["worker_cpu_ms_per_request"]


def login_benchmark(kind: str, results: dict, workdir: str, *, users: int, clients: int) -> None:
    url = seed.new_database(kind, workdir)
    try:
        seed.migrate(url)
        app = seed.app_for(url)
        totp_users = seed.seed_practice(app, users=users, enrolled="totp", practice_name="TOTP Practice")
        email_practice = seed.seed_practice(app, users=users, enrolled="email", practice_name="Email Practice")
        engine = create_engine(url)

        def email_code(email):
            with engine.connect() as connection:
                body = connection.execute(
                    text("SELECT body_text FROM outbox_messages WHERE recipient = :r ORDER BY id DESC LIMIT 1"),
                    {"r": email},
                ).scalar()
            return re.search(r"\b(\d{6})\b", body).group(1)

        with Server("wsgi:app", seed.server_env(url)) as server:
            section = results.setdefault(kind, {})
            accounts = list(totp_users["secrets"])
            flows.run_logins(server.base, accounts[:10], seed.PASSWORD, flows.totp_code_for(totp_users["secrets"]), 2)
            before = server.cpu_seconds()
            timings, elapsed = flows.run_logins(server.base, accounts[10:], seed.PASSWORD,
                                                flows.totp_code_for(totp_users["secrets"]), clients)
            cpu = server.cpu_seconds() - before
            count = len(accounts) - 10
            section["totp_login"] = _login_section(timings, elapsed, cpu, count, results)

            with engine.connect() as connection:
                emails = [row[0] for row in connection.execute(
                    text("SELECT email FROM users WHERE practice_id = :p ORDER BY id"),
                    {"p": email_practice["practice_id"]})]
            before = server.cpu_seconds()
            timings, elapsed = flows.run_logins(server.base, emails, seed.PASSWORD, email_code, clients)
            cpu = server.cpu_seconds() - before
            section["email_login"] = _login_section(timings, elapsed, cpu, len(emails), results)

            # Code step under load: many pending logins, then a burst of code POSTs.
            fresh = seed.seed_practice(app, users=users, enrolled="totp", practice_name="Burst Practice")
            pending = []
            for email in fresh["secrets"]:
                browser, code_url, csrf = flows.prepare_pending(server.base, email, seed.PASSWORD)
                pending.append((browser, code_url, csrf, flows.totp_code_for(fresh["secrets"])(email)))
            before = server.cpu_seconds()
            report, _ = flows.code_burst(pending, clients)
            report["server_cpu_ms_per_post"] = round((server.cpu_seconds() - before) / len(pending) * 1000, 2)
            report["share_of_bare_route"] = round(
                report["requests_per_s"] / results["floors"]["bare_route"]["requests_per_s"], 3)
            section["code_burst"] = report
        engine.dispose()
    finally:
        seed.drop_database(url)


def _login_section(timings, elapsed, cpu, count, results) -> dict:
    per_login = cpu / count * 1000
    return {
        "logins": count,
        "flows_per_s": round(count / elapsed, 1),
        "steps": timings.report(),
        "server_cpu_ms_per_login": round(per_login, 2),
        "server_cpu_ms_beyond_argon2": round(per_login - results["floors"]["argon2_verify_worker_cpu_ms"], 2),
        "server_cpu_ms_beyond_argon2_in_a_loop": round(per_login - results["floors"]["argon2_verify_cpu_ms"], 2),
    }


def scale_benchmark(kind: str, results: dict, workdir: str, *, sizes: list[tuple[int, int]], repeats: int) -> None:
    """Review and audit pages at two sizes: p50/p95, CSV memory, SQL statements per request."""
    url = seed.new_database(kind, workdir)
    try:
        seed.migrate(url)
        app = seed.app_for(url)
        import pyotp

        support_secret = pyotp.random_base32()
        practice = None
        browsers = {}  # the logged-in HTTP clients of the size being measured (the statement counts reuse them)
        have_users = have_events = 0
        section = results.setdefault(kind, {}).setdefault("scale", {})
        for users, events in sizes:
            if practice is None:
                practice = seed.seed_practice(app, users=users, enrolled="mixed", practice_name="Scale Practice")
                seed.add_account(app, email="admin@scale.bench.test", role="practice_admin",
                                 practice_id=practice["practice_id"])
                seed.add_account(app, email="support@scale.bench.test", role="support", practice_id=None,
                                 totp_secret=support_secret)
            else:
                _grow_practice(app, practice["practice_id"], users - have_users)
            seed.seed_audit(app, events=events - have_events, practice_id=practice["practice_id"])
            seed.settle(url)
            have_users, have_events = users, events
            section[f"{users}_users_{events}_events"] = _measure_pages(
                app, url, repeats, support_secret, users, browsers)
        small, large = (section[f"{u}_users_{e}_events"] for u, e in sizes)
        section["p95_ratio"] = {page: round(large["pages"][page]["p95_ms"] / small["pages"][page]["p95_ms"], 2)
                                for page in small["pages"]}
        section["same_query_counts"] = small["queries"] == large["queries"]
    finally:
        seed.drop_database(url)


def _grow_practice(app, practice_id: int, extra: int) -> None:
    """Add users to the existing practice (bulk), continuing its numbering."""
    from datetime import timedelta

    from sqlalchemy import insert, update

    from portal.clock import now as utcnow
    from portal.extensions import db
    from portal.models import MfaEnrollment, User

    with app.app_context():
        password_hash = db.session.scalar(text("SELECT password_hash FROM users WHERE practice_id = :p LIMIT 1"),
                                          {"p": practice_id})
        start = db.session.scalar(text("SELECT count(*) FROM users WHERE practice_id = :p"), {"p": practice_id})
        now = utcnow()
        done = 0
        while done < extra:
            count = min(5000, extra - done)
            db.session.execute(insert(User), [
                dict(email=f"grow{start + done + i:07d}@{practice_id}.bench.test",
                     display_name=f"Bench User {start + done + i:07d}", role="clinician", practice_id=practice_id,
                     password_hash=password_hash, active=True, session_version=1, email_verified_at=now, created_at=now,
                     mfa_failed_count=0, failed_password_count=0)
                for i in range(count)])
            ids = [row[0] for row in db.session.execute(
                text("SELECT id FROM users WHERE practice_id = :p ORDER BY id DESC LIMIT :n"),
                {"p": practice_id, "n": count})]
            db.session.execute(insert(MfaEnrollment), [
                dict(user_id=user_id, method="email", enrolled_at=now - timedelta(days=user_id % 300))
                for user_id in ids[::2]])
            db.session.execute(update(User), [
                dict(id=user_id, last_mfa_at=now - timedelta(minutes=user_id % 50000)) for user_id in ids[::4]])
            db.session.commit()
            done += count
            seed.progress("more users", done, extra)


def _log_in_browsers(base: str, support_secret: str) -> dict:
    import pyotp

    admin = requests.Session()
    page = admin.get(base + "/login")
    admin.post(base + "/login", data={"email": "admin@scale.bench.test", "password": seed.PASSWORD,
                                      "csrf_token": flows.token(page.text)})
    support = requests.Session()
    page = support.get(base + "/login")
    support.post(base + "/login", data={"email": "support@scale.bench.test", "password": seed.PASSWORD,
                                        "csrf_token": flows.token(page.text)})
    page = support.get(base + "/login/code")
    totp = pyotp.TOTP(support_secret)
    support.post(base + "/login/code", data={"code": totp.at(time.time() - 30), "csrf_token": flows.token(page.text)})
    page = support.get(base + "/support/confirm")
    response = support.post(base + "/support/confirm", data={
        "password": seed.PASSWORD, "code": totp.now(), "csrf_token": flows.token(page.text)}, allow_redirects=False)
    assert response.status_code == 303, "support confirmation failed"
    return {"admin": admin, "support": support}


def _measure_pages(app, url: str, repeats: int, support_secret: str, users: int, browsers: dict) -> dict:
    pages = {
        "review first page": "/practice/",
        "review filtered": "/practice/?filter=without_mfa&q=bench",
        "review deep page": f"/practice/?page={max(1, users // 25 - 1)}",
        # Pages past the middle are read from the end, so the middle is the deepest any page goes.
        "review middle page": f"/practice/?page={max(1, users // 50)}",
        # Every other sort, either way, and the status filters under the sorts that read from
        # the copies triggers keep on users (migration 0016).
        **{f"review by {sort} {direction}": f"/practice/?sort={sort}&dir={direction}"
           for sort in ("email", "method", "enrolled", "last_mfa") for direction in ("asc", "desc")},
        "review by name desc": "/practice/?sort=name&dir=desc",
        **{f"review {status} by {sort}": f"/practice/?filter={status}&sort={sort}"
           for status in ("with_mfa", "without_mfa") for sort in ("method", "enrolled", "last_mfa")},
        "audit (support)": "/support/audit",
        "audit filtered (support)": "/support/audit?event_type=mfa.code_sent",
        "audit (practice)": "/practice/audit",
    }
    result = {"pages": {}, "queries": {}}
    with Server("wsgi:app", seed.server_env(url)) as server:
        # Logged in afresh at each size: seeding the next size can outlast support's confirmation
        # (15 minutes), and a page that redirects to Log In must fail the run, never be timed.
        browsers.clear()
        browsers.update(_log_in_browsers(server.base, support_secret))
        admin, support = browsers["admin"], browsers["support"]
        for name, path in pages.items():
            browser = support if "support" in name else admin
            for _ in range(5):  # warm-up (the database's caches too), not timed
                assert browser.get(server.base + path, allow_redirects=False).status_code == 200
            timings = flows.Timings()
            for _ in range(repeats):
                response = timings.timed(name, lambda browser=browser, path=path: browser.get(
                    server.base + path, allow_redirects=False))
                assert response.status_code == 200, (name, response.status_code)
            result["pages"][name] = timings.report()[name]
        before = {pid: kib for pid, kib in server.memory_kib("VmRSS").items()}
        started = time.perf_counter()
        rows = 0
        response = admin.get(server.base + "/practice/users.csv", stream=True)
        for _line in response.iter_lines():
            rows += 1
        seconds = time.perf_counter() - started  # the whole download, to its last row
        peak = server.memory_kib("VmHWM")
        result["csv"] = {"rows": rows - 1, "seconds": round(seconds, 3),
                         "worker_memory_growth_mb": round(
                             max(peak[pid] - before.get(pid, peak[pid]) for pid in peak) / 1024, 1)}
    result["queries"] = _count_queries(app, pages, browsers)
    return result


def _count_queries(app, pages: dict, browsers: dict) -> dict:
    """SQL statements per request, counted in-process on the same code, in the sessions the
    HTTP clients logged in (sessions live in the database both processes share)."""
    from portal.extensions import db

    counts = {}
    with app.app_context():
        engine = db.engine
    statements = []

    def count(*_args, **_kwargs):
        statements.append(1)

    app.session_interface.cleanup_n_requests = 0  # no random expiry sweep inside a count
    cookie = app.config["SESSION_COOKIE_NAME"]
    clients = {}
    for role, browser in browsers.items():
        clients[role] = app.test_client()
        clients[role].set_cookie(cookie, browser.cookies[cookie])
    event.listen(engine, "before_cursor_execute", count)
    try:
        for name, path in pages.items():
            statements.clear()
            response = clients["support" if "support" in name else "admin"].get(path)
            assert response.status_code == 200, (name, response.status_code)
            counts[name] = len(statements)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return counts


def verdicts(results: dict) -> list[dict]:
    rows = []
    for kind in ("sqlite", "postgresql"):
        section = results.get(kind)
        if not section:
            continue
        for flow in ("totp_login", "email_login"):
            if flow in section:
                value = section[flow]["server_cpu_ms_beyond_argon2"]
                rows.append(dict(target=f"{kind} {flow}: CPU per login beyond argon2 <= {TARGETS['login_cpu_ms']} ms",
                                 figure=f"{value} ms", passed=value <= TARGETS["login_cpu_ms"]))
        if "code_burst" in section:
            cpu = section["code_burst"]["server_cpu_ms_per_post"]
            share = section["code_burst"]["share_of_bare_route"]
            rows.append(dict(target=f"{kind} code POST CPU <= {TARGETS['code_cpu_ms']} ms", figure=f"{cpu} ms",
                             passed=cpu <= TARGETS["code_cpu_ms"]))
            rows.append(dict(target=f"{kind} code POST throughput >= 10% of bare route", figure=f"{share:.0%}",
                             passed=share >= TARGETS["code_vs_bare"]))
        scale = section.get("scale")
        if scale:
            for page, ratio in scale["p95_ratio"].items():
                rows.append(dict(target=f"{kind} {page}: large p95 <= 1.5x small", figure=f"{ratio}x",
                                 passed=ratio <= TARGETS["scale_p95_ratio"]))
            rows.append(dict(target=f"{kind} same SQL statements at both sizes", figure=str(scale["same_query_counts"]),
                             passed=scale["same_query_counts"]))
            large = [v for k, v in scale.items() if k.endswith("_events")][-1]
            growth = large["csv"]["worker_memory_growth_mb"]
            rows.append(dict(target=f"{kind} CSV of {large['csv']['rows']:,} rows: worker memory growth < 50 MB",
                             figure=f"{growth} MB", passed=growth < TARGETS["csv_memory_mb"]))
    return rows


def markdown(results: dict) -> str:
    """The login and review-page figures (the queue's are `notices.markdown`)."""
    if not any(kind in results for kind in ("floors", "sqlite", "postgresql")):
        return ""
    lines = [f"Run {results['date']} on {results['machine']}.", ""]
    if "bare_route" in results.get("floors", {}):  # a run of the scale section alone has none
        lines += [
             f"Floors: argon2id verify {results['floors']['argon2_verify_cpu_ms']} ms CPU in a loop, "
             f"{results['floors']['argon2_verify_worker_cpu_ms']} ms in a gunicorn worker (the figure subtracted); "
             f"TOTP verify {results['floors']['totp_verify_cpu_ms']} ms; bare route "
             f"{results['floors']['bare_route']['requests_per_s']} req/s "
             f"(p50 {results['floors']['bare_route']['p50_ms']} ms, "
             f"p99 {results['floors']['bare_route']['p99_ms']} ms, "
             f"{results['floors']['bare_route']['worker_cpu_ms_per_request']} ms worker CPU per request).", ""]
    lines += ["| Target | Figure | Result |", "|---|---|---|"]
    for row in results["verdicts"]:
        lines.append(f"| {row['target']} | {row['figure']} | {'pass' if row['passed'] else 'FAIL'} |")
    for kind in ("sqlite", "postgresql"):
        section = results.get(kind, {})
        for flow in ("totp_login", "email_login"):
            if flow in section:
                data = section[flow]
                lines += ["", f"**{kind}, {flow.replace('_', ' ')}**: {data['logins']} logins, "
                          f"{data['flows_per_s']} flows/s, "
                          f"{data['server_cpu_ms_per_login']} ms server CPU per login: "
                          f"{data['server_cpu_ms_beyond_argon2']} ms beyond a worker's argon2 verify, "
                          f"{data['server_cpu_ms_beyond_argon2_in_a_loop']} ms beyond a loop's.", "",
                          "| Step | p50 ms | p90 ms | p99 ms |", "|---|---|---|---|"]
                for step, stats in sorted(data["steps"].items()):
                    lines.append(f"| {step} | {stats['p50_ms']} | {stats['p90_ms']} | {stats['p99_ms']} |")
        scale = section.get("scale")
        if scale:
            lines += ["", f"**{kind}, review and audit pages**", "",
                      "| Size | Page | p50 ms | p95 ms | SQL statements |", "|---|---|---|---|---|"]
            for size, data in scale.items():
                if not size.endswith("_events"):
                    continue
                for page, stats in data["pages"].items():
                    lines.append(f"| {size.replace('_', ' ')} | {page} | {stats['p50_ms']} | {stats['p95_ms']} | "
                                 f"{data['queries'].get(page, '—')} |")
                lines.append(f"| {size.replace('_', ' ')} | CSV export ({data['csv']['rows']:,} rows) | "
                             f"{data['csv']['seconds'] * 1000:.0f} (total) | — | "
                             f"memory +{data['csv']['worker_memory_growth_mb']} MB |")
    return "\n".join(lines) + "\n"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, "
            f"Python {platform.python_version()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--users", type=int, default=150, help="logins per flow")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--small", default="1000,10000", help="users,events")
    parser.add_argument("--large", default="50000,1000000", help="users,events")
    parser.add_argument("--repeats", type=int, default=100, help="timed requests per page (p95 needs many)")
    parser.add_argument("--scale-backends", default="postgresql")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"sections to run, of {','.join(SECTIONS)} (logins need floors, so they run them too)")
    parser.add_argument("--search-sizes", default="10000,1000000", help="users, small then large, for support's search")
    parser.add_argument("--queue-sizes", default="1000,10000,50000", help="practice sizes for the request's time")
    parser.add_argument("--queue-drain", type=int, default=50000, help="practice size whose notices are drained")
    parser.add_argument("--queue-rounds", type=int, default=20, help="timed on/off requests per size")
    parser.add_argument("--queue-consumers", default="1,2", help="consumer processes, one drain each")
    parser.add_argument("--queue-threads", type=int, default=2, help="worker threads per consumer (--workers)")
    parser.add_argument("--queue-batch-size", type=int, default=500, help="QUEUE_BATCH_SIZE")
    parser.add_argument("--queue-timeout", type=float, default=900, help="seconds a drain may take")
    args = parser.parse_args()
    only = set(filter(None, args.only.split(",")))
    if only - set(SECTIONS):
        parser.error(f"--only takes {', '.join(SECTIONS)}")
    if "logins" in only:
        only.add("floors")
    results = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%MZ"), "machine": machine(), "floors": {}}
    failed = []

    def section(name: str, run) -> None:
        """Run one section; if it fails, say so and go on, so the others' figures are still written."""
        try:
            run()
        except Exception:  # noqa: BLE001 (a bench section's failure is reported, then the run goes on)
            traceback.print_exc()
            failed.append(name)
            print(f"{name}: FAILED (above); its figures are missing from this run", file=sys.stderr)

    with tempfile.TemporaryDirectory() as workdir:
        if "floors" in only:
            print("floors ...", file=sys.stderr)
            section("floors", lambda: floors(results["floors"]))
        if "logins" in only:
            for kind in filter(None, args.backends.split(",")):
                print(f"logins on {kind} ...", file=sys.stderr)
                section(f"logins on {kind}", lambda kind=kind: login_benchmark(
                    kind, results, workdir, users=args.users, clients=args.clients))
        if "scale" in only:
            sizes = [tuple(int(n) for n in args.small.split(",")), tuple(int(n) for n in args.large.split(","))]
            for kind in filter(None, args.scale_backends.split(",")):
                print(f"review pages on {kind} ...", file=sys.stderr)
                section(f"review pages on {kind}", lambda kind=kind: scale_benchmark(
                    kind, results, workdir, sizes=sizes, repeats=args.repeats))
        if "search" in only:
            print("support's user search (PostgreSQL) ...", file=sys.stderr)
            section("search", lambda: search.search_benchmark(
                results, workdir, sizes=[int(n) for n in args.search_sizes.split(",")], repeats=args.repeats))
        if "queue" in only:
            print("task queue: a practice's notices (PostgreSQL, Redis) ...", file=sys.stderr)
            section("queue", lambda: notices.queue_benchmark(
                results, workdir, sizes=[int(n) for n in args.queue_sizes.split(",")], drain_size=args.queue_drain,
                rounds=args.queue_rounds, consumer_counts=[int(n) for n in args.queue_consumers.split(",")],
                threads=args.queue_threads, batch_size=args.queue_batch_size, timeout=args.queue_timeout))
    RESULTS.mkdir(exist_ok=True)
    stem = results["date"][:10]
    if only != set(SECTIONS) or failed:  # a failed section keeps the day's earlier figures
        results = _merge_into_day(RESULTS / f"{stem}.json", results)
    results["verdicts"] = (verdicts(results) + search.verdicts(results, TARGETS["scale_p95_ratio"])
                           + notices.verdicts(results))
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    table, queue_table = markdown(results) + search.markdown(results), notices.markdown(results)
    (RESULTS / f"{stem}.md").write_text("\n".join(filter(None, [table, queue_table])))
    if README.exists():
        text_ = README.read_text()
        if only & {"floors", "logins", "scale", "search"}:
            text_ = _replace_block(text_, "<!-- latest results -->", "<!-- end of latest results -->", table)
        if "queue" in only and "queue" not in failed:
            text_ = _replace_block(text_, "<!-- latest queue results -->", "<!-- end of latest queue results -->",
                                   queue_table)
        README.write_text(text_)
    print(table + queue_table)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


SECTIONS = ("floors", "logins", "scale", "search", "queue")


def _merge_into_day(path: Path, results: dict) -> dict:
    """A partial run keeps the day's other sections: what ran replaces its own keys."""
    try:
        day = json.loads(path.read_text())
    except (OSError, ValueError):
        return results
    for key, value in results.items():
        if key in ("date", "machine", "verdicts") or value in ({}, None):
            continue
        if isinstance(value, dict) and isinstance(day.get(key), dict):
            day[key].update(value)
        else:
            day[key] = value
    return day


def _replace_block(text_: str, start: str, end: str, table: str) -> str:
    if start in text_ and end in text_:
        head, rest = text_.split(start, 1)
        return head + start + "\n" + table + end + rest.split(end, 1)[1]
    return text_


if __name__ == "__main__":
    sys.exit(main())
