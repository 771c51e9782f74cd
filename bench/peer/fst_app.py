"""The peer in `make bench-peer`: a minimal Flask-Security-Too app doing what the portal's Log In does.

Email + password, then an authenticator (TOTP) code, then a page that needs the login. argon2id
with the portal's parameters (19456 KiB, t=2, p=1). It runs only in the bench's own virtual
environment (bench/peer/requirements.txt, `.bench-venv`), never beside the portal.

  python -m bench.peer.fst_app seed N SECRETS_JSON   users peer-000000@bench.test ... with known secrets
  gunicorn bench.peer.fst_app:app                     serve (DATABASE_URL, SECRET_KEY from the environment)
"""

from __future__ import annotations

import json
import os
import sys

import pyotp
from flask import Flask, render_template_string
from flask_security import Security, SQLAlchemyUserDatastore, auth_required, hash_password
from flask_security.models import fsqla_v3 as fsqla
from flask_sqlalchemy import SQLAlchemy

PASSWORD = "Bench-Passw0rd-long"  # the portal bench's password (bench/seed.py)

db = SQLAlchemy()
fsqla.FsModels.set_db_info(db)


class Role(db.Model, fsqla.FsRoleMixin):
    pass


class User(db.Model, fsqla.FsUserMixin):
    pass


class WebAuthn(db.Model, fsqla.FsWebAuthnMixin):  # the v3 user model refers to it; unused here
    pass


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=os.environ.get("SECRET_KEY", "bench-only-secret-key-not-for-production"),
        SECURITY_PASSWORD_SALT=os.environ.get("SECURITY_PASSWORD_SALT", "bench-only-salt"),
        SQLALCHEMY_DATABASE_URI=os.environ["DATABASE_URL"],
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": False},
        # Same password hash as the portal's production setting.
        SECURITY_PASSWORD_HASH="argon2",
        SECURITY_PASSWORD_HASH_PASSLIB_OPTIONS={
            "argon2__memory_cost": 19456, "argon2__rounds": 2, "argon2__parallelism": 1, "argon2__type": "ID",
        },
        # Two-factor with an authenticator app only, asked at every Log In (as the portal does).
        SECURITY_TWO_FACTOR=True,
        SECURITY_TWO_FACTOR_REQUIRED=True,
        SECURITY_TWO_FACTOR_ENABLED_METHODS=["authenticator"],
        SECURITY_TWO_FACTOR_ALWAYS_VALIDATE=True,
        SECURITY_TOTP_SECRETS={"1": os.environ.get("TOTP_SECRET", "bench-only-totp-encryption-secret")},
        SECURITY_TOTP_ISSUER="Bench peer",
        SECURITY_POST_LOGIN_VIEW="/",
        # The bench's addresses end in .test (reserved): no DNS lookups, like the portal.
        SECURITY_EMAIL_VALIDATOR_ARGS={"check_deliverability": False, "test_environment": True},
    )
    db.init_app(app)
    app.security = Security(app, SQLAlchemyUserDatastore(db, User, Role))

    @app.route("/")
    @auth_required()
    def dashboard():
        return render_template_string("<!doctype html><title>Dashboard</title><h1>Dashboard</h1>")

    @app.route("/healthz")
    def healthz():
        return "ok"

    return app


def seed(count: int, secrets_path: str) -> None:
    """Create the tables and `count` users, each with a known authenticator secret (written to JSON)."""
    app = create_app()
    secrets = {}
    with app.app_context():
        db.create_all()
        factory = app.security._totp_factory._totp  # passlib's TOTP factory, holding the encryption secrets
        password = hash_password(PASSWORD)  # one hash for all: seeding speed, same cost to verify
        datastore = app.security.datastore
        for number in range(count):
            email = f"peer-{number:06d}@bench.test"
            secret = pyotp.random_base32()
            datastore.create_user(email=email, password=password, tf_primary_method="authenticator",
                                  tf_totp_secret=factory(key=secret, format="base32").to_json(encrypt=True))
            secrets[email] = secret
        db.session.commit()
    with open(secrets_path, "w") as handle:
        json.dump(secrets, handle)


app = create_app() if os.environ.get("DATABASE_URL") else None

if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "seed":
        sys.exit(__doc__)
    seed(int(sys.argv[2]), sys.argv[3])
