"""The floors: a bare Flask route, and one argon2id verify, served by the same gunicorn settings
as the portal (so the worker's own cost of an argon2 verify is measured where logins pay it)."""

from argon2 import PasswordHasher
from flask import Flask

from bench.seed import PASSWORD

app = Flask(__name__)
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)  # the production minimum
_hash = _hasher.hash(PASSWORD)


@app.route("/hello")
def hello():
    return "hello"


@app.route("/argon2")
def argon2_verify():
    _hasher.verify(_hash, PASSWORD)
    return "verified"
