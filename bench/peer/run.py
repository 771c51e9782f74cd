"""`make bench-peer`: the portal and Flask-Security-Too (FST) doing the same Log In, side by side.

Both apps run under gunicorn with the same worker settings (2 workers, gthread, 4 threads), the
same argon2id parameters (19456 KiB, t=2, p=1) and an authenticator (TOTP) second step; FST runs
from its own virtual environment (`.bench-venv`, bench/peer/requirements.txt), never beside the
portal. For each database the portal is measured on, FST runs on the same kind of database
(SQLite for SQLite; PostgreSQL for PostgreSQL), so each ratio compares like with like. The
database server's CPU is counted with the workers' (PostgreSQL backends serving the app's
database, read from /proc; Redis's server process when the portal keeps sessions there): the
portal writes at Log In (replay guard, session, audit), FST does not.

Rounds alternate the apps (A/B, then B/A, ...), each round on fresh users, and each ratio
portal / FST is computed inside its round; the report gives medians and ranges over rounds.
Per app and round:
  - unloaded: one client, sequential Log Ins: p50 of every step (the code POST's is a target);
  - loaded: 4 clients: Log Ins/s, p50/p99 per step, server CPU per Log In beyond one argon2 verify
    (as a gunicorn worker pays it with 4 clients, measured each round, as `make bench` does; the
    figure beyond a tight loop's verify is reported too);
  - code burst: many pending Log Ins, then their code POSTs from 4 clients: server CPU per POST.
Writes bench/results/<date>-peer.json and the table in bench/README.md. Loopback only, bounded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from bench import flows, seed
from bench.run import README, RESULTS, _replace_block, machine, served_floors
from bench.servers import CLOCK_TICKS, ROOT, Server

PEER_PYTHON = ROOT / ".bench-venv" / "bin" / "python"
WORKER_OPTIONS = ("--worker-class", "gthread", "--threads", "4")  # the portal's gunicorn.conf.py defaults
TARGETS = {
    "code_post_p50_ratio": 0.2,       # code POST p50 latency, portal / FST (unloaded)
    "code_post_cpu_ratio": 0.2,       # server CPU per code POST, portal / FST
    "login_cpu_ratio": 0.25,          # server CPU per Log In beyond one argon2 verify, portal / FST
    "p99_over_p50": 3.0,              # every step, 4 clients
}
# The portal's variants: (label, database kind, extra environment).
VARIANTS = {
    "sqlite": ("sqlite", {}),
    "postgresql": ("postgresql", {}),
    "postgresql+redis": ("postgresql", {"SESSION_REDIS_URL": "redis://127.0.0.1:6379/13"}),
}


def argon2_floor_ms() -> float:
    """One argon2id verify with both apps' parameters, CPU ms in a tight loop (the same library)."""
    from argon2 import PasswordHasher

    hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
    hashed = hasher.hash(seed.PASSWORD)
    started = time.process_time()
    for _ in range(20):
        hasher.verify(hashed, seed.PASSWORD)
    return (time.process_time() - started) / 20 * 1000


class DatabaseCpu:
    """CPU seconds of the database server's work for one app: PostgreSQL backends connected to
    its database (and, if given, the Redis server's process). SQLite runs inside the workers."""

    def __init__(self, url: str, redis_pid: int | None = None):
        self.url = url
        self.redis_pid = redis_pid
        self.engine = create_engine(seed.PG_ADMIN_URL) if url.startswith("postgresql") else None
        self.database = url.rsplit("/", 1)[1]

    def _pids(self) -> list[int]:
        pids = [self.redis_pid] if self.redis_pid else []
        if self.engine is not None:
            with self.engine.connect() as connection:
                pids += [row[0] for row in connection.execute(
                    text("SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": self.database})]
        return pids

    def snapshot(self) -> dict[int, float]:
        result = {}
        for pid in self._pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            result[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        return result

    def since(self, before: dict[int, float]) -> float:
        """CPU used since `before`; a backend that started in between counts from zero."""
        return sum(cpu - before.get(pid, 0.0) for pid, cpu in self.snapshot().items())

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()


def redis_server_pid() -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if command and command[0].endswith(b"redis-server") and any(b":6379" in part for part in command):
                return int(entry.name)
    return None


class App:
    """One side of the comparison: a seeded database and its gunicorn server."""

    def __init__(self, name: str, server: Server, url: str, secrets: dict[str, str], code_path: str,
                 database_cpu: DatabaseCpu):
        self.name, self.server, self.url, self.code_path = name, server, url, code_path
        self.accounts = list(secrets)
        self.code_for = flows.totp_code_for(secrets)
        self.database_cpu = database_cpu

    def take(self, count: int) -> list[str]:
        taken, self.accounts = self.accounts[:count], self.accounts[count:]
        if len(taken) < count:
            raise RuntimeError(f"{self.name}: not enough seeded users (raise --users)")
        return taken

    def cpu(self) -> tuple[float, dict]:
        return self.server.cpu_seconds(), self.database_cpu.snapshot()

    def cpu_since(self, before: tuple[float, dict]) -> tuple[float, float]:
        workers, database = before
        return self.server.cpu_seconds() - workers, self.database_cpu.since(database)


def start_portal(kind: str, extra_env: dict, workdir: str, users: int) -> App:
    url = seed.new_database(kind, workdir)
    seed.migrate(url)
    app = seed.app_for(url)
    secrets = seed.seed_practice(app, users=users, enrolled="totp", practice_name="Peer Practice")["secrets"]
    server = Server("wsgi:app", {**seed.server_env(url), **extra_env})
    redis_pid = redis_server_pid() if "SESSION_REDIS_URL" in extra_env else None
    return App("portal", server, url, secrets, "/login/code", DatabaseCpu(url, redis_pid))


def start_peer(kind: str, workdir: str, users: int) -> App:
    url = seed.new_database(kind, workdir)
    secrets_path = os.path.join(workdir, f"peer-{time.monotonic_ns()}.json")
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    subprocess.run([str(PEER_PYTHON), "-m", "bench.peer.fst_app", "seed", str(users), secrets_path],
                   cwd=ROOT, env=env, check=True)
    secrets = json.loads(Path(secrets_path).read_text())
    server = Server("bench.peer.fst_app:app", {"DATABASE_URL": url, "PYTHONPATH": str(ROOT)},
                    python=str(PEER_PYTHON), config="/dev/null", options=WORKER_OPTIONS)
    return App("fst", server, url, secrets, "/tf-validate", DatabaseCpu(url))


def measure(app: App, *, unloaded: int, loaded: int, burst: int, clients: int, floor_ms: float,
            worker_floor_ms: float) -> dict:
    base, code_path = app.server.base, app.code_path
    flows.run_logins(base, app.take(5), seed.PASSWORD, app.code_for, 1, code_path=code_path)  # warm up
    timings, _ = flows.run_logins(base, app.take(unloaded), seed.PASSWORD, app.code_for, 1, code_path=code_path)
    result = {"unloaded": timings.report()}

    before = app.cpu()
    timings, elapsed = flows.run_logins(base, app.take(loaded), seed.PASSWORD, app.code_for, clients,
                                        code_path=code_path)
    workers, database = app.cpu_since(before)
    result["loaded"] = {
        "steps": timings.report(),
        "logins_per_s": round(loaded / elapsed, 1),
        "worker_cpu_ms_per_login": round(workers / loaded * 1000, 2),
        "database_cpu_ms_per_login": round(database / loaded * 1000, 2),
        "cpu_ms_per_login_beyond_argon2": round((workers + database) / loaded * 1000 - worker_floor_ms, 2),
        "cpu_ms_per_login_beyond_loop_argon2": round((workers + database) / loaded * 1000 - floor_ms, 2),
    }

    pending = []
    for email in app.take(burst):
        browser, code_url, csrf = flows.prepare_pending(base, email, seed.PASSWORD, code_path=code_path)
        pending.append((browser, code_url, csrf, app.code_for(email)))
    before = app.cpu()
    report, _ = flows.code_burst(pending, clients)
    workers, database = app.cpu_since(before)
    report["worker_cpu_ms_per_post"] = round(workers / burst * 1000, 2)
    report["database_cpu_ms_per_post"] = round(database / burst * 1000, 2)
    report["cpu_ms_per_post"] = round((workers + database) / burst * 1000, 2)
    result["code_burst"] = report
    return result


def ratios(portal: dict, peer: dict) -> dict:
    return {
        "code_post_p50_ratio": portal["unloaded"]["4 POST code"]["p50_ms"] / peer["unloaded"]["4 POST code"]["p50_ms"],
        "code_post_cpu_ratio": portal["code_burst"]["cpu_ms_per_post"] / peer["code_burst"]["cpu_ms_per_post"],
        "login_cpu_ratio": (portal["loaded"]["cpu_ms_per_login_beyond_argon2"]
                            / peer["loaded"]["cpu_ms_per_login_beyond_argon2"]),
        "login_cpu_ratio_loop_floor": (portal["loaded"]["cpu_ms_per_login_beyond_loop_argon2"]
                                       / peer["loaded"]["cpu_ms_per_login_beyond_loop_argon2"]),
    }


def run_variant(label: str, args, workdir: str) -> dict:
    kind, extra_env = VARIANTS[label]
    per_round = args.unloaded + args.loaded + args.burst + 5
    users = per_round * args.rounds
    print(f"{label}: seeding {users} users in each app ...", file=sys.stderr)
    portal = start_portal(kind, extra_env, workdir, users)
    peer = start_peer(kind, workdir, users)
    rounds = []
    try:
        for number in range(args.rounds):
            order = (portal, peer) if number % 2 == 0 else (peer, portal)
            # This round's argon2 verify as a worker pays it with 4 clients (the machine drifts
            # between rounds); both apps' Log Ins have it subtracted.
            _, worker_floor_ms = served_floors(bare_requests=1000, argon2_requests=200)
            figures = {}
            for app in order:
                print(f"  round {number + 1}/{args.rounds}: {app.name}", file=sys.stderr)
                figures[app.name] = measure(app, unloaded=args.unloaded, loaded=args.loaded, burst=args.burst,
                                            clients=args.clients, floor_ms=args.floor_ms,
                                            worker_floor_ms=worker_floor_ms)
            rounds.append({"order": [app.name for app in order], "worker_argon2_floor_ms": round(worker_floor_ms, 2),
                           **figures,
                           "ratios": ratios(figures["portal"], figures["fst"])})
    finally:
        for app in (portal, peer):
            app.server.stop()
            app.database_cpu.close()
            seed.drop_database(app.url)
    return {"rounds": rounds, "summary": summarise(rounds)}


def _spread(values: list[float], digits: int = 2) -> dict:
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits)}


def summarise(rounds: list[dict]) -> dict:
    summary = {name: _spread([r["ratios"][name] for r in rounds], 3) for name in rounds[0]["ratios"]}
    for app in ("portal", "fst"):
        summary[app] = {
            "code_post_p50_ms": _spread([r[app]["unloaded"]["4 POST code"]["p50_ms"] for r in rounds]),
            "cpu_ms_per_code_post": _spread([r[app]["code_burst"]["cpu_ms_per_post"] for r in rounds]),
            "cpu_ms_per_login_beyond_argon2": _spread(
                [r[app]["loaded"]["cpu_ms_per_login_beyond_argon2"] for r in rounds]),
            "cpu_ms_per_login_beyond_loop_argon2": _spread(
                [r[app]["loaded"]["cpu_ms_per_login_beyond_loop_argon2"] for r in rounds]),
            "database_cpu_ms_per_login": _spread([r[app]["loaded"]["database_cpu_ms_per_login"] for r in rounds]),
            "logins_per_s": _spread([r[app]["loaded"]["logins_per_s"] for r in rounds], 1),
        }
    # p99 / p50 of every portal step with 4 clients: the worst round.
    tails = {}
    for r in rounds:
        for step, figures in r["portal"]["loaded"]["steps"].items():
            tails[step] = max(tails.get(step, 0.0), figures["p99_ms"] / figures["p50_ms"])
    summary["portal_p99_over_p50"] = {step: round(value, 2) for step, value in sorted(tails.items())}
    return summary


def verdicts(results: dict) -> list[dict]:
    found = []
    for label, variant in results["variants"].items():
        summary = variant["summary"]
        for name in ("code_post_p50_ratio", "code_post_cpu_ratio", "login_cpu_ratio"):
            value = summary[name]["median"]
            found.append({"variant": label, "target": f"{name} <= {TARGETS[name]}", "figure": value,
                          "passed": value <= TARGETS[name]})
        worst_step, worst = max(summary["portal_p99_over_p50"].items(), key=lambda item: item[1])
        found.append({"variant": label, "target": f"p99 / p50 of every step <= {TARGETS['p99_over_p50']}",
                      "figure": f"{worst} ({worst_step})", "passed": worst <= TARGETS["p99_over_p50"]})
    return found


def markdown(results: dict) -> str:
    floors = [r["worker_argon2_floor_ms"] for v in results["variants"].values() for r in v["rounds"]]
    lines = [f"Run {results['date']} on {results['machine']}; {results['rounds']} rounds, A/B alternating; "
             f"one argon2 verify: {results['argon2_floor_ms']:.1f} ms CPU in a loop, "
             f"{min(floors):.1f}–{max(floors):.1f} ms as a gunicorn worker pays it with 4 clients "
             "(measured each round; the figure subtracted, as in `make bench`).", "",
             "| portal on | figure | portal (median, range) | FST (median, range) | portal ÷ FST (median, range) |",
             "|---|---|---|---|---|"]
    rows = (("code POST p50, unloaded (ms)", "code_post_p50_ms", "code_post_p50_ratio"),
            ("server CPU per code POST (ms)", "cpu_ms_per_code_post", "code_post_cpu_ratio"),
            ("server CPU per Log In beyond a worker's argon2 (ms)", "cpu_ms_per_login_beyond_argon2",
             "login_cpu_ratio"),
            ("server CPU per Log In beyond a loop's argon2 (ms)", "cpu_ms_per_login_beyond_loop_argon2",
             "login_cpu_ratio_loop_floor"),
            ("of which database server (ms)", "database_cpu_ms_per_login", None),
            ("Log Ins per second, 4 clients", "logins_per_s", None))

    def cell(spread):
        return f"{spread['median']} ({spread['min']}–{spread['max']})"

    for label, variant in results["variants"].items():
        summary = variant["summary"]
        for title, key, ratio in rows:
            lines.append(f"| {label} | {title} | {cell(summary['portal'][key])} | {cell(summary['fst'][key])} | "
                         f"{cell(summary[ratio]) if ratio else ''} |")
    lines += ["", "| portal on | target | figure | result |", "|---|---|---|---|"]
    for verdict in results["verdicts"]:
        lines.append(f"| {verdict['variant']} | {verdict['target']} | {verdict['figure']} | "
                     f"{'pass' if verdict['passed'] else 'FAIL'} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"of {','.join(VARIANTS)}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--unloaded", type=int, default=40, help="sequential Log Ins per app and round")
    parser.add_argument("--loaded", type=int, default=80, help="Log Ins from --clients clients per app and round")
    parser.add_argument("--burst", type=int, default=80, help="code POSTs in the burst per app and round")
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    if not PEER_PYTHON.exists():
        parser.error(f"{PEER_PYTHON} is missing: run `make bench-peer`, which creates it")
    labels = [label for label in args.variants.split(",") if label]
    if set(labels) - set(VARIANTS):
        parser.error(f"--variants takes {', '.join(VARIANTS)}")
    args.floor_ms = argon2_floor_ms()
    results = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%MZ"), "machine": machine(),
               "rounds": args.rounds, "argon2_floor_ms": round(args.floor_ms, 2), "variants": {}}
    with tempfile.TemporaryDirectory() as workdir:
        for label in labels:
            results["variants"][label] = run_variant(label, args, workdir)
    results["verdicts"] = verdicts(results)
    RESULTS.mkdir(exist_ok=True)
    stem = results["date"][:10] + "-peer"
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (RESULTS / f"{stem}.md").write_text(table)
    if README.exists():
        README.write_text(_replace_block(README.read_text(), "<!-- peer results -->", "<!-- end of peer results -->",
                                         table))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
