"""The development server (`flask run`): its request log masks link tokens as gunicorn's does."""

import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from portal.accounts import invitations, password_reset
from portal.clock import now as utcnow
from tests.factories import make_user
from tests.functional.test_server import wait_for
from tests.smtp_server import free_port

pytestmark = pytest.mark.server
ROOT = Path(__file__).resolve().parents[2]


def test_flask_run_masks_invitation_and_reset_tokens_in_its_request_log(app, outbox, database_uri, tmp_path):
    """Does werkzeug's request log under `flask run` show /invitations/[token] and
    /reset-password/[token], never a token (in the path or a query string), for real links
    that open (200) and for made-up ones?"""
    admin = make_user("dev-admin@example.test", role="practice_admin")
    invitations.invite(admin=admin, email="dev-invitee@example.test", display_name="Dev", role="staff", now=utcnow())
    make_user("dev-reset@example.test")
    password_reset.request_reset("dev-reset@example.test", now=utcnow())
    links = [outbox.link("dev-invitee@example.test"), outbox.link("dev-reset@example.test")]
    tokens = [link.rsplit("/", 1)[1] for link in links]
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("FLASK_", "TRUSTED_"))}
    env.update(PORTAL_CONFIG="development", DATABASE_URL=database_uri, SECRET_KEY=app.config["SECRET_KEY"],
               MFA_ENCRYPTION_KEYS=app.config["MFA_ENCRYPTION_KEYS"][0], QUEUE_SQLITE_PATH=str(tmp_path / "queue.db"),
               AUDIT_CHECKPOINT_PATH=str(tmp_path / "checkpoints.jsonl"),
               RATELIMIT_ENABLED="0", LOG_FORMAT="text")
    process = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "run", "--host", "127.0.0.1",
                                "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/healthz", process)
        for link in links:
            assert urllib.request.urlopen(base + link, timeout=10).status == 200  # the real links open
        for path in ("/invitations/SECRET-INVITE-VALUE?x=SECRET-QUERY", "/reset-password/SECRET-TOKEN-VALUE",
                     f"/login?next=/reset-password/{tokens[1]}"):
            try:
                urllib.request.urlopen(base + path, timeout=10)
            except urllib.error.HTTPError:
                pass
    finally:
        process.terminate()
        process.wait(timeout=10)
    log = process.stdout.read().decode(errors="replace")
    assert '"GET /invitations/[token] HTTP/1.1" 200' in log
    assert '"GET /reset-password/[token] HTTP/1.1" 200' in log
    assert '"GET /login HTTP/1.1" 200' in log  # the query string is left out, as gunicorn's log does
    for secret in [*tokens, "SECRET-INVITE-VALUE", "SECRET-TOKEN-VALUE", "SECRET-QUERY"]:
        assert secret not in log
