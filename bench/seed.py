"""Fresh databases and bulk data for the benchmark (bulk inserts, with a progress bar)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import timedelta

from sqlalchemy import create_engine, insert, text, update

from bench.servers import ROOT

PASSWORD = "Bench-Passw0rd-long"
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def progress(label: str, done: int, total: int) -> None:
    width = 30
    filled = int(width * done / total) if total else width
    sys.stderr.write(f"\r  {label:<28} [{'#' * filled}{'.' * (width - filled)}] {done:>9,}/{total:,}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def new_database(kind: str, workdir: str) -> str:
    """An empty database URL: a SQLite file, or a new PostgreSQL database."""
    if kind == "sqlite":
        path = os.path.join(workdir, f"bench-{uuid.uuid4().hex[:6]}.db")
        return f"sqlite:///{path}"
    name = f"portal_bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    if url.startswith("sqlite"):
        try:
            os.remove(url.removeprefix("sqlite:///"))
        except OSError:
            pass
        return
    name = url.rsplit("/", 1)[1]
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def server_env(url: str) -> dict:
    """Development settings with production-strength hashing; limits off (a load test is one address)."""
    return {
        "PORTAL_CONFIG": "development",
        "FLASK_APP": "wsgi",
        "DATABASE_URL": url,
        "DEV_OUTBOX": "1",
        "RATELIMIT_ENABLED": "0",
        "MFA_CODES_PER_HOUR": "1000",
        "MFA_RESEND_COOLDOWN_SECONDS": "0",
        "PYTHONPATH": str(ROOT),
    }


def settle(url: str) -> None:
    """After a bulk load, what autovacuum would soon do on its own: statistics and the
    visibility map (PostgreSQL), so plans and index-only scans are those of a settled database."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))
    engine.dispose()


def migrate(url: str) -> None:
    subprocess.run([sys.executable, "-m", "flask", "db", "upgrade"], cwd=ROOT, env={**os.environ, **server_env(url)},
                   check=True, capture_output=True)


def app_for(url: str):
    os.environ.update(server_env(url))
    from portal import create_app

    return create_app({"SQLALCHEMY_DATABASE_URI": url})


def seed_practice(app, *, users: int, enrolled: str | None, practice_name: str, password_hash: str | None = None,
                  batch: int = 5000) -> dict:
    """A practice with `users` clinicians; `enrolled` gives each an MFA method ("totp", "email",
    "mixed": a quarter each with none/totp/sms/email, or "fifth": every fifth user Email, the
    others none). Returns {"practice_id": id, "secrets": {email: TOTP secret}}."""
    from portal.accounts import passwords
    from portal.clock import now as utcnow
    from portal.extensions import db
    from portal.mfa import crypto, totp
    from portal.models import MfaEnrollment, Practice, User

    secrets_by_email = {}
    with app.app_context():
        practice = Practice(name=practice_name)
        db.session.add(practice)
        db.session.commit()
        password_hash = password_hash or passwords.hash_password(PASSWORD)
        now = utcnow()
        done = 0
        while done < users:
            count = min(batch, users - done)
            rows = [
                dict(email=f"user{done + i:07d}@{practice.id}.bench.test", display_name=f"Bench User {done + i:07d}",
                     role="clinician", practice_id=practice.id, password_hash=password_hash, active=True,
                     session_version=1, email_verified_at=now, created_at=now, mfa_failed_count=0,
                     failed_password_count=0)
                for i in range(count)
            ]
            db.session.execute(insert(User), rows)
            db.session.commit()
            ids = db.session.execute(
                text("SELECT id, email FROM users WHERE practice_id = :p ORDER BY id"), {"p": practice.id}
            ).all()[done:done + count]
            enrollments = []
            for index, (user_id, email) in enumerate(ids, start=done):
                method = enrolled
                if enrolled == "mixed":
                    method = (None, "totp", "sms", "email")[index % 4]
                elif enrolled == "fifth":
                    method = "email" if index % 5 == 0 else None
                if method is None:
                    continue
                row = dict(user_id=user_id, method=method, enrolled_at=now - timedelta(days=index % 300),
                           phone_e164=None, totp_secret=None)
                if method == "totp":
                    secret = totp.new_secret()
                    secrets_by_email[email] = secret
                    row["totp_secret"] = crypto.encrypt(secret)
                elif method == "sms":
                    row["phone_e164"] = f"+1202555{index % 10000:04d}"
                enrollments.append(row)
            if enrollments:
                db.session.execute(insert(MfaEnrollment), enrollments)
                # Half of them have logged in with their code since (the review's "Last MFA login").
                db.session.execute(update(User), [
                    dict(id=row["user_id"], last_mfa_at=now - timedelta(minutes=row["user_id"] % 50000))
                    for row in enrollments[::2]])
                db.session.commit()
            done += count
            progress(f"users ({practice_name[:12]})", done, users)
        return {"practice_id": practice.id, "secrets": secrets_by_email}


def seed_audit(app, *, events: int, practice_id: int, batch: int = 20000) -> None:
    """`events` hash-chained audit rows, appended after whatever the trail already holds."""
    from portal import audit
    from portal.clock import now as utcnow
    from portal.extensions import db
    from portal.models import AuditEvent

    types = ("login.password_succeeded", "mfa.code_sent", "mfa.code_verified", "login.succeeded", "logout")
    with app.app_context():
        previous = (db.session.scalar(text("SELECT row_hash FROM audit_events ORDER BY id DESC LIMIT 1"))
                    or audit.GENESIS)
        start = utcnow() - timedelta(days=365)
        done = 0
        while done < events:
            count = min(batch, events - done)
            rows = []
            for i in range(done, done + count):
                event = AuditEvent(
                    occurred_at=start + timedelta(seconds=i * 30), event_type=types[i % len(types)], outcome="success",
                    actor_id=None, subject_id=None, practice_id=practice_id if i % 3 else None, ip="10.0.0.1",
                    user_agent="bench", request_id=None, detail="{}",
                )
                event.prev_hash = previous
                event.row_hash = previous = audit.row_hash(previous, event)
                rows.append({c: getattr(event, c) for c in (
                    "occurred_at", "event_type", "outcome", "actor_id", "subject_id", "practice_id", "ip",
                    "user_agent", "request_id", "detail", "prev_hash", "row_hash")})
            db.session.execute(insert(AuditEvent), rows)
            db.session.commit()
            done += count
            progress("audit events", done, events)


def add_account(app, *, email: str, role: str, practice_id: int | None, totp_secret: str | None = None) -> None:
    from portal.accounts import passwords
    from portal.clock import now as utcnow
    from portal.extensions import db
    from portal.mfa import crypto
    from portal.models import MfaEnrollment, User

    with app.app_context():
        user = User(email=email, display_name=email.split("@")[0], role=role, practice_id=practice_id,
                    password_hash=passwords.hash_password(PASSWORD), email_verified_at=utcnow())
        db.session.add(user)
        db.session.flush()
        if totp_secret:
            db.session.add(MfaEnrollment(user_id=user.id, method="totp", totp_secret=crypto.encrypt(totp_secret)))
        db.session.commit()
