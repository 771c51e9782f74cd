"""Where a login's CPU goes, in-process: `python -m bench.profile [--backend sqlite|postgresql]`.

Runs the five requests of a browser's Log In (Authenticator App) through the Flask test
client, many times, on a fresh database: prints each step's CPU and SQL statements, the
process's own argon2 verify for comparison, then a pyinstrument profile of the steps (argon2
appears as one frame of the password step). No gunicorn and no HTTP: the difference from
`make bench`'s figures is the server's own per-request cost and the load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import pyotp
from pyinstrument import Profiler
from sqlalchemy import event

from bench import flows, seed

STEPS = ("1 GET /login", "2 POST password", "3 GET code page", "4 POST code", "5 GET dashboard")


def login_steps(client, email: str, secret: str):
    """The five requests, as (step, call) pairs run in order."""
    state = {}

    def post_password():
        response = client.post("/login", data={"email": email, "password": seed.PASSWORD, "csrf_token": state["token"]})
        assert response.status_code == 303, response.status_code
        return response

    def post_code():
        response = client.post("/login/code", data={"code": pyotp.TOTP(secret).now(), "csrf_token": state["token"]})
        assert response.status_code == 303 and response.headers["Location"] == "/", response.status_code
        return response

    def keep_token(response):
        state["token"] = flows.token(response.get_data(as_text=True))
        return response

    return [
        (STEPS[0], lambda: keep_token(client.get("/login"))),
        (STEPS[1], post_password),
        (STEPS[2], lambda: keep_token(client.get("/login/code"))),
        (STEPS[3], post_code),
        (STEPS[4], lambda: client.get("/")),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="sqlite", choices=("sqlite", "postgresql"))
    parser.add_argument("--logins", type=int, default=200)
    parser.add_argument("--minimal-argon2", action="store_true",
                        help="hash with 8 KiB and one pass (the tests' setting) to see the other steps without "
                             "the caches that production argon2's 19 MiB pass leaves cold")
    args = parser.parse_args()
    if args.minimal_argon2:
        os.environ.update(ARGON2_MEMORY_COST="8", ARGON2_TIME_COST="1")
    url = seed.new_database(args.backend, tempfile.mkdtemp())
    try:
        seed.migrate(url)
        app = seed.app_for(url)
        secrets = seed.seed_practice(app, users=args.logins + 10, enrolled="totp", practice_name="Profile")["secrets"]
        from portal.extensions import db

        with app.app_context():
            engine = db.engine
        statements = []
        event.listen(engine, "before_cursor_execute", lambda *_args: statements.append(1))
        cpu = {step: [] for step in STEPS}
        counts = {}
        profiler = Profiler(interval=0.0005)
        accounts = list(secrets.items())
        timed, profiled = accounts[10:10 + args.logins // 2], accounts[10 + args.logins // 2:]
        for email, secret in accounts[:10]:  # warm caches
            for _step, call in login_steps(app.test_client(), email, secret):
                call()
        for email, secret in timed:  # timings without the profiler
            for step, call in login_steps(app.test_client(), email, secret):
                statements.clear()
                started = time.process_time()
                call()
                cpu[step].append(time.process_time() - started)
                counts[step] = len(statements)
        for email, secret in profiled:
            for _step, call in login_steps(app.test_client(), email, secret):
                profiler.start()
                call()
                profiler.stop()
        from argon2 import PasswordHasher

        hasher = PasswordHasher(time_cost=app.config["ARGON2_TIME_COST"], memory_cost=app.config["ARGON2_MEMORY_COST"],
                                parallelism=1)
        hashed = hasher.hash(seed.PASSWORD)
        started = time.process_time()
        for _ in range(20):
            hasher.verify(hashed, seed.PASSWORD)
        argon2_ms = (time.process_time() - started) / 20 * 1000
        print(f"{args.backend}: {len(timed)} logins in-process timed, then {len(profiled)} profiled")
        total = 0.0
        for step in STEPS:
            median = statistics.median(cpu[step]) * 1000
            total += median
            print(f"  {step:<18} {median:6.2f} ms CPU  {counts[step]:>2} SQL statements")
        print(f"  all five           {total:6.2f} ms; one argon2 verify here {argon2_ms:.2f} ms; "
              f"beyond it {total - argon2_ms:.2f} ms")
        print(profiler.output_text(unicode=False, color=False, show_all=False))
    finally:
        seed.drop_database(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
