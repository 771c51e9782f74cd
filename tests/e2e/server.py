"""The real portal for the browser tests: migrated, seeded, served by gunicorn on loopback.

A migrated and seeded SQLite file is built once per run; each test copies it and starts its
own server on a free port, so flows that change demo users never see each other.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO_PASSWORD = "Demo-Passw0rd!"

# Settings the server reads from the environment; the test runner's own values must not leak
# in (a CI job's Redis or PostgreSQL, a production SECRET_KEY...).
_CONFIG_PREFIXES = ("MAIL_", "SMS_", "TWILIO_", "MFA_", "SESSION_", "SUPPORT_", "LIMIT_", "RATELIMIT_",
                    "ARGON2_", "GUNICORN_", "PASSWORD_", "TEST_", "FLASK_", "QUEUE_", "AUDIT_", "VIP_")
_CONFIG_NAMES = {"SECRET_KEY", "DATABASE_URL", "DEV_OUTBOX", "PORTAL_CONFIG", "PORTAL_NAME", "PUBLIC_BASE_URL",
                 "TRUSTED_PROXY_COUNT", "EMAIL_ALLOW_TEST_DOMAIN", "FORWARDED_ALLOW_IPS", "TRUSTED_HOSTS"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def copy_database(source: Path, target: Path) -> None:
    """Copy a SQLite database with SQLite's backup API: safe in WAL mode, unlike a file copy."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def server_env(database: Path, **extra: str) -> dict[str, str]:
    """The development settings of `make run`, on `database`, with a 2-second resend cooldown."""
    env = {key: value for key, value in os.environ.items()
           if key not in _CONFIG_NAMES and not key.startswith(_CONFIG_PREFIXES)}
    env.update(
        PORTAL_CONFIG="development",
        FLASK_APP="wsgi",
        DEV_OUTBOX="1",
        DATABASE_URL=f"sqlite:///{database}",
        QUEUE_SQLITE_PATH=str(database.with_name(database.stem + "-queue.db")),
        AUDIT_CHECKPOINT_PATH=str(database.with_name(database.stem + "-audit-checkpoints.jsonl")),
        QUEUE_RETRY_DELAY_SECONDS="1",
        MFA_RESEND_COOLDOWN_SECONDS="2",
        RATELIMIT_ENABLED="0",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def run_flask(database: Path, *args: str) -> str:
    """Run a `flask` command against `database` with the server's settings."""
    result = subprocess.run([sys.executable, "-m", "flask", *args], cwd=ROOT, env=server_env(database),
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def build_seeded_database(directory: Path) -> Path:
    """`flask db upgrade` and `flask seed-demo` into a new SQLite file."""
    database = directory / "seeded.db"
    run_flask(database, "db", "upgrade")
    run_flask(database, "seed-demo")
    return database


# Adds `count` users to Demo Family Practice, the first `with_mfa` of them with Email MFA, with a
# password hash made by the portal itself (same configuration as the server).
_ADD_MEMBERS = """
import sys
from datetime import datetime, timezone
from sqlalchemy import select
from wsgi import app
from portal.accounts.passwords import hash_password
from portal.extensions import db
from portal.models import MfaEnrollment, Practice, User

count, with_mfa = int(sys.argv[1]), int(sys.argv[2])
with app.app_context():
    practice = db.session.scalar(select(Practice).where(Practice.name == "Demo Family Practice"))
    password_hash = hash_password(sys.argv[3])
    now = datetime.now(timezone.utc)
    for number in range(1, count + 1):
        user = User(email=f"member{number:02d}@demo.test", display_name=f"Member {number:02d}",
                    role="clinician" if number % 2 else "staff", practice=practice,
                    password_hash=password_hash, email_verified_at=now, session_version=1)
        db.session.add(user)
        db.session.flush()
        if number <= with_mfa:
            db.session.add(MfaEnrollment(user_id=user.id, method="email", enrolled_at=now))
    db.session.commit()
"""


def add_practice_members(database: Path, count: int, with_mfa: int) -> None:
    result = subprocess.run([sys.executable, "-c", _ADD_MEMBERS, str(count), str(with_mfa), DEMO_PASSWORD],
                            cwd=ROOT, env=server_env(database), capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"adding practice members failed:\n{result.stdout}\n{result.stderr}")


@dataclass
class Server:
    base_url: str
    database: Path
    log_path: Path
    process: subprocess.Popen = field(repr=False)
    consumer: subprocess.Popen = field(repr=False)  # `flask queue work`: notices go out through it

    def url(self, path: str) -> str:
        return self.base_url + path

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def signal_stop(self) -> None:
        """Ask this server to stop: SIGTERM, gunicorn's graceful shutdown, to its own process id."""
        for process in (self.process, self.consumer):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30) -> None:
        """Stop this server and wait for it. The master stops its worker (killing it after
        gunicorn's 20-second graceful timeout); if the master itself hangs, kill its own process
        group (master and worker, started in a session of their own) and nothing else."""
        self.signal_stop()
        for process in (self.process, self.consumer):
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                # Not yet reaped, so the group id (its own pid) is still ours.
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def launch_server(template: Path, directory: Path, settings: tuple[tuple[str, str], ...] = ()) -> Server:
    """Copy `template` into `directory` and start gunicorn on it, on a free loopback port, with
    `settings` (name, value) over the usual ones.

    Returns at once; `wait_until_ready` waits for the server to answer.
    """
    database = directory / "portal.db"
    copy_database(template, database)
    port = free_port()
    # Several servers run at once (the next test's is started early): no shared control socket.
    env = server_env(database, GUNICORN_BIND=f"127.0.0.1:{port}", GUNICORN_WORKERS="1", GUNICORN_THREADS="4",
                     GUNICORN_CMD_ARGS="--no-control-socket",
                     # VIP Access through the development stand-in inside this server (portal/dev).
                     VIP_API_BASE_URL=f"http://127.0.0.1:{port}/dev/vip",
                     VIP_DEV_STATE_PATH=str(database.with_name(database.stem + "-vip.json")), **dict(settings))
    log_path = directory / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                                   cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        consumer = subprocess.Popen([sys.executable, "-m", "flask", "queue", "work", "--workers", "1"],
                                    cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return Server(base_url=f"http://127.0.0.1:{port}", database=database, log_path=log_path, process=process,
                  consumer=consumer)


def wait_until_ready(server: Server, seconds: float = 30) -> Server:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the portal exited at start-up:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url("/healthz"), timeout=2) as response:
                if response.status == 200:
                    return server
        except (OSError, urllib.error.URLError):
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"the portal did not answer at {server.base_url}:\n{server.log_tail()}")


class ServerPool:
    """Hands each test a fresh server and starts the next one while that test runs.

    A server is used by one test only; the spare shares nothing with it but the template it
    was copied from.
    """

    def __init__(self, make_directory):
        self.make_directory = make_directory
        self.spares: dict[tuple, Server] = {}
        self.stopping: list[Server] = []

    def release(self, server: Server) -> None:
        """Stop a used server; its exit is awaited at the end of the run, not by the test."""
        server.signal_stop()
        self.stopping.append(server)

    def take(self, template: Path, **settings: str) -> Server:
        """A ready server on a copy of `template`, with `settings` over the usual ones."""
        key = (template, tuple(sorted(settings.items())))
        server = self.spares.pop(key, None) or launch_server(template, self.make_directory(), key[1])
        try:
            wait_until_ready(server)
        finally:
            self.spares[key] = launch_server(template, self.make_directory(), key[1])
        return server

    def close(self) -> None:
        for server in [*self.spares.values(), *self.stopping]:
            server.stop()
        self.spares.clear()
        self.stopping.clear()
