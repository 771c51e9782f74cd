"""deploy/nginx.conf in front of gunicorn (production settings), both on loopback.

nginx comes from Debian's package (`apt-get install nginx`; .ci/run installs it). The shipped
configuration is used as it is, with only its addresses, certificate paths and static
directory replaced; nginx's pid, logs and temporary files go to the test's own directory and
it is stopped by its process id. Without nginx the tests are skipped, except in CI (CI set),
where they must run.
"""

from __future__ import annotations

import datetime
import http.client
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from tests.production_env import production_settings
from tests.smtp_server import free_port

pytestmark = [pytest.mark.server, pytest.mark.proxy]
ROOT = Path(__file__).resolve().parents[2]
HOST = "portal.example.org"
PROMPT = 2.0  # seconds: what "promptly" means for a page while slow clients hold connections
SLOW_CLIENTS = 12  # three times what the one gunicorn worker's 4 threads could hold
HOLD = 6.0  # seconds the slow clients keep trickling header lines (nginx's limit is 10 s)

# Replaced in deploy/nginx.conf, each exactly once: everything else is used as shipped.
SITE_PLACEHOLDERS = ("listen 443 ssl http2;", "listen [::]:443 ssl http2;", "listen 80;", "listen [::]:80;",
                     "server 127.0.0.1:8000;", "/etc/ssl/certs/portal.example.org.pem",
                     "/etc/ssl/private/portal.example.org.key", "/srv/portal/static/")


def nginx_binary() -> str:
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if binary is None:
        if os.environ.get("CI"):
            raise RuntimeError("nginx is needed for the proxy tests: .ci/run installs it (apt-get install nginx)")
        pytest.skip("nginx not installed (apt-get install nginx; CI installs it)")
    return binary


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
                   .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "portal.pem", directory / "portal.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def site_config(https_port: int, http_port: int, gunicorn_port: int, cert: Path, key: Path) -> str:
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    replacements = dict(zip(SITE_PLACEHOLDERS, (
        f"listen 127.0.0.1:{https_port} ssl http2;", "", f"listen 127.0.0.1:{http_port};", "",
        f"server 127.0.0.1:{gunicorn_port};", str(cert), str(key), f"{ROOT / 'static'}/"), strict=True))
    for old, new in replacements.items():
        assert text.count(old) == 1, f"deploy/nginx.conf no longer has {old!r} exactly once"
        text = text.replace(old, new)
    return text


def main_config(directory: Path) -> str:
    """What Debian's /etc/nginx/nginx.conf provides around a site, with every file in `directory`."""
    user = "user root root;\n" if os.geteuid() == 0 else ""  # workers must read the checkout
    return (f"{user}worker_processes 1;\npid {directory}/nginx.pid;\nerror_log {directory}/error.log info;\n"
            "events { worker_connections 512; }\n"
            "http {\n  include /etc/nginx/mime.types;\n  default_type application/octet-stream;\n"
            f"  access_log {directory}/access.log;\n"
            + "".join(f"  {kind}_temp_path {directory}/{kind};\n"
                      for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
            + f"  include {directory}/portal.conf;\n}}\n")


def gunicorn_env(port: int, database_uri: str) -> dict[str, str]:
    """Production settings behind one proxy on loopback; nothing of the runner's own leaks in."""
    prefixes = ("MAIL_", "SMS_", "TWILIO_", "MFA_", "SESSION_", "SUPPORT_", "LIMIT_", "RATELIMIT_", "ARGON2_",
                "GUNICORN_", "PASSWORD_", "TEST_", "FLASK_", "QUEUE_", "AUDIT_")
    names = {"SECRET_KEY", "DATABASE_URL", "DEV_OUTBOX", "PORTAL_CONFIG", "PORTAL_NAME", "PUBLIC_BASE_URL",
             "TRUSTED_PROXY_COUNT", "EMAIL_ALLOW_TEST_DOMAIN", "FORWARDED_ALLOW_IPS", "TRUSTED_HOSTS", "LOG_FORMAT",
             "MAX_CONTENT_LENGTH"}
    env = {key: value for key, value in os.environ.items() if key not in names and not key.startswith(prefixes)}
    env.update({
        **production_settings(database_uri),
        "PUBLIC_BASE_URL": f"https://{HOST}",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",  # threads: gunicorn.conf.py's default (4)
        "TRUSTED_PROXY_COUNT": "1",  # docs/DEPLOY.md: nginx is the one proxy
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
        "LOG_FORMAT": "text",
    })
    return env


def wait_until_listening(port: int, process, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with status {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{what} did not listen on {port}")


class Stack:
    """gunicorn and nginx in front of it, started and stopped by their process ids."""

    def __init__(self, directory: Path, database_uri: str):
        self.directory = directory
        self.gunicorn_port, self.https_port, self.http_port = free_port(), free_port(), free_port()
        self.gunicorn_log = directory / "gunicorn.log"
        cert, key = self_signed_certificate(directory)
        (directory / "portal.conf").write_text(site_config(self.https_port, self.http_port, self.gunicorn_port,
                                                           cert, key))
        (directory / "nginx.conf").write_text(main_config(directory))
        self.tls = ssl.create_default_context(cafile=str(cert))
        self.tls.check_hostname = False  # the certificate names portal.example.org; we dial 127.0.0.1
        self.nginx_command = [nginx_binary(), "-p", str(directory), "-e", str(directory / "error.log"),
                              "-c", str(directory / "nginx.conf")]
        self.database_uri = database_uri
        self.gunicorn = self.nginx = None

    def start(self) -> Stack:
        checked = subprocess.run([*self.nginx_command, "-t"], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr  # the shipped configuration is valid nginx
        with open(self.gunicorn_log, "wb") as log:
            self.gunicorn = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                                             cwd=ROOT, env=gunicorn_env(self.gunicorn_port, self.database_uri),
                                             stdout=log, stderr=subprocess.STDOUT)
        wait_until_listening(self.gunicorn_port, self.gunicorn, "gunicorn")
        self.nginx = subprocess.Popen([*self.nginx_command, "-g", "daemon off;"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until_listening(self.https_port, self.nginx, "nginx")
        return self

    def stop(self) -> None:
        for process in (self.nginx, self.gunicorn):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 10) -> tuple[int, dict, str, float]:
        """One request through nginx over TLS: status, headers, body, seconds taken."""
        started = time.monotonic()
        connection = http.client.HTTPSConnection("127.0.0.1", self.https_port, context=self.tls, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers={"Host": HOST, **(headers or {})})
            response = connection.getresponse()
            text = response.read().decode(errors="replace")
            return response.status, dict(response.getheaders()), text, time.monotonic() - started
        finally:
            connection.close()


@pytest.fixture
def stack(tmp_path, database_uri, migrated):
    running = Stack(tmp_path, database_uri).start()
    yield running
    running.stop()


class SlowClients:
    """Connections that send a request header one line at a time, a line a second, never ending it."""

    def __init__(self, count: int, connect):
        self.count = count
        self.connect = connect
        self.stop = threading.Event()
        self.sent_lines = [0] * count
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._trickle, args=(i,), daemon=True) for i in range(count)]

    def __enter__(self) -> SlowClients:
        for thread in self.threads:
            thread.start()
        time.sleep(0.5)  # every connection made and its first line sent
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=5)

    def _trickle(self, index: int) -> None:
        try:
            with self.connect() as sock:
                sock.sendall(f"GET /login HTTP/1.1\r\nHost: {HOST}\r\n".encode())
                while not self.stop.wait(1.0):
                    sock.sendall(b"X-Slow: still here\r\n")
                    self.sent_lines[index] += 1
        except OSError as error:
            self.errors.append(error)


def test_the_shipped_proxy_keeps_serving_while_slow_clients_hold_connections(stack):
    """Slow-header clients, three times what gunicorn's threads could hold, trickle for a while:
    through nginx, /healthz and the Log In page still answer promptly, again and again, and
    gunicorn never even sees the slow requests."""

    def connect():
        raw = socket.create_connection(("127.0.0.1", stack.https_port), timeout=5)
        return stack.tls.wrap_socket(raw, server_hostname=HOST)

    probes = 0
    with SlowClients(SLOW_CLIENTS, connect) as slow:
        deadline = time.monotonic() + HOLD
        while time.monotonic() < deadline:
            for path, expected in (("/healthz", '"ok"'), ("/login", "<h1>Log In</h1>")):
                status, _, body, took = stack.request("GET", path, timeout=PROMPT + 3)
                assert status == 200 and expected in body, (path, status)
                assert took < PROMPT, f"{path} took {took:.1f}s while slow clients held connections"
                probes += 1
            time.sleep(0.5)
        assert not slow.errors, slow.errors  # every slow client was still connected, trickling
        assert min(slow.sent_lines) >= HOLD - 2
    assert probes >= 8
    stack.stop()
    log = stack.gunicorn_log.read_text()
    assert "X-Slow" not in log
    assert log.count('"GET /login"') == probes // 2  # only the probes reached gunicorn


def test_gunicorn_alone_is_held_by_the_same_slow_clients(stack):
    """Why the proxy is the way to run it: straight at gunicorn, the same slow clients hold all
    its threads, and /healthz gets no answer until they stop."""

    def connect():
        return socket.create_connection(("127.0.0.1", stack.gunicorn_port), timeout=5)

    with SlowClients(SLOW_CLIENTS, connect):
        connection = http.client.HTTPConnection("127.0.0.1", stack.gunicorn_port, timeout=PROMPT)
        with pytest.raises(TimeoutError):
            connection.request("GET", "/healthz", headers={"Host": HOST})
            connection.getresponse()
        connection.close()
    deadline = time.monotonic() + 10
    while True:  # once they are gone, it answers again
        try:
            connection = http.client.HTTPConnection("127.0.0.1", stack.gunicorn_port, timeout=2)
            connection.request("GET", "/healthz", headers={"Host": HOST})
            assert connection.getresponse().status == 200
            break
        except (TimeoutError, ConnectionError):
            assert time.monotonic() < deadline, "gunicorn did not recover after the slow clients left"
        finally:
            connection.close()


def test_a_body_over_the_limit_gets_the_portals_413_page_from_nginx_and_from_gunicorn(stack):
    """client_max_body_size 64k in nginx, MAX_CONTENT_LENGTH 64 KiB in the app: over it, the
    portal's own 413 page, from the announced length, before the body is sent."""
    status, headers, body, _ = stack.request("POST", "/login", body=b"email=a%40example.test&password=" + b"x" * 70_000,
                                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 413
    assert "That request was too large." in body and 'href="/static/css/portal.css"' in body
    assert headers["X-Content-Type-Options"] == "nosniff" and "frame-ancestors 'none'" in headers[
        "Content-Security-Policy"]

    def announce_only(sock) -> bytes:
        """Announce 10 MB, send none of it, and read what comes back."""
        sock.sendall(f"POST /login HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                     f"Content-Length: {10 * 1024 * 1024}\r\nConnection: close\r\n\r\n".encode())
        sock.settimeout(5)
        received = b""
        while b"</html>" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received

    raw = socket.create_connection(("127.0.0.1", stack.https_port), timeout=5)
    with stack.tls.wrap_socket(raw, server_hostname=HOST) as sock:
        reply = announce_only(sock).decode(errors="replace")
    assert reply.startswith("HTTP/1.1 413") and "That request was too large." in reply

    # gunicorn itself (behind nginx it never gets such a body): the app refuses unread too.
    with socket.create_connection(("127.0.0.1", stack.gunicorn_port), timeout=5) as sock:
        reply = announce_only(sock).decode(errors="replace")
    assert reply.startswith("HTTP/1.1 413") and "That request was too large." in reply


def test_the_proxy_passes_the_client_address_and_https_and_nothing_a_client_claims(app, stack):
    """One proxy, TRUSTED_PROXY_COUNT=1: the portal sees HTTPS (its Secure cookie, no redirect)
    and the address nginx saw, never an X-Forwarded-For or -Host the client sent; plain HTTP
    is redirected to HTTPS."""
    from portal.extensions import db
    from portal.models import AuditEvent
    from tests.factories import make_user

    make_user("proxied@example.test")
    status, headers, body, _ = stack.request("GET", "/login")
    assert status == 200 and "<h1>Log In</h1>" in body
    cookie = headers["Set-Cookie"]
    assert cookie.startswith("__Host-portal_session=") and "Secure" in cookie
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', body).group(1)

    status, _, _, _ = stack.request(
        "POST", "/login", body=urlencode({"csrf_token": token, "email": "proxied@example.test",
                                          "password": "wrong-password"}).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie.split(";")[0],
                 "Referer": f"https://{HOST}/login",  # CSRF over HTTPS checks the referrer
                 "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Host": "evil.example", "Forwarded": "for=203.0.113.9"})
    assert status == 401
    db.session.expire_all()
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.event_type == "login.password_failed")).one()
    assert event.ip == "127.0.0.1"  # the address nginx saw, not the one the client claimed

    connection = http.client.HTTPConnection("127.0.0.1", stack.http_port, timeout=5)
    try:
        connection.request("GET", "/login?next=/", headers={"Host": HOST})
        response = connection.getresponse()
        assert response.status == 301 and response.getheader("Location") == f"https://{HOST}/login?next=/"
    finally:
        connection.close()
