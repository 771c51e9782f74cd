"""The VIP User Services stand-in (portal/dev/vip_standin.py) served on loopback over real HTTP,
or HTTPS that demands a client certificate, for testing VIP Access for real.

    with VipServer() as vip:                # http://127.0.0.1:<port>/vipuserservices
        secret = vip.add_token("VSST12345678")
    with VipServer(tls=TlsFiles.make(tmp_path)) as vip:   # https, client certificate required

`vip.stand_in.mode` switches every answer to HTTP 500 ("error"), VIP's internal error
("internal") or a stall longer than any client timeout ("stall"); `accept_replays` makes it
accept a code twice (to prove the portal's own replay check).
"""

from __future__ import annotations

import datetime
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyotp

from portal.dev.vip_standin import STEP_SECONDS, StandIn

PREFIX = "/vipuserservices/"


class _Handler(BaseHTTPRequestHandler):
    server_version = "VipStandIn/1.0"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
        pass

    def do_POST(self):  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if not self.path.startswith(PREFIX):
            return self._send(404, b"not found", "text/plain")
        if self.server.client_certs is not None:
            self.server.client_certs.append(self.connection.getpeercert())
        status, answer = self.server.stand_in.handle(self.path[len(PREFIX):], body)
        self._send(status, answer, "text/xml; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a stall): nothing to deliver


@dataclass
class TlsFiles:
    """A throwaway CA, the server's certificate for 127.0.0.1 and a client certificate (PEM files)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def make(cls, folder: Path) -> TlsFiles:
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        now = datetime.datetime.now(datetime.UTC)

        def key():
            return ec.generate_private_key(ec.SECP256R1())

        def name(common):
            return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

        def build(subject, issuer, public_key, signer, *, ca=False, extensions=()):
            builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                       .public_key(public_key).serial_number(x509.random_serial_number())
                       .not_valid_before(now - datetime.timedelta(minutes=5))
                       .not_valid_after(now + datetime.timedelta(days=1))
                       .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
            for extension in extensions:
                builder = builder.add_extension(extension, critical=False)
            return builder.sign(signer, hashes.SHA256())

        ca_key = key()
        ca_cert = build(name("Test VIP CA"), name("Test VIP CA"), ca_key.public_key(), ca_key, ca=True)
        server_key, client_key = key(), key()
        server_cert = build(name("127.0.0.1"), ca_cert.subject, server_key.public_key(), ca_key, extensions=(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])))
        client_cert = build(name("portal-vip-account"), ca_cert.subject, client_key.public_key(), ca_key,
                            extensions=(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),))

        def write(path: Path, data: bytes) -> Path:
            path.write_bytes(data)
            return path

        def pem_key(private) -> bytes:
            return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())

        folder.mkdir(parents=True, exist_ok=True)
        pem = serialization.Encoding.PEM
        return cls(
            ca=write(folder / "ca.pem", ca_cert.public_bytes(pem)),
            server_cert=write(folder / "server.pem", server_cert.public_bytes(pem)),
            server_key=write(folder / "server-key.pem", pem_key(server_key)),
            client_cert=write(folder / "client.pem", client_cert.public_bytes(pem)),
            client_key=write(folder / "client-key.pem", pem_key(client_key)),
        )


class VipServer:
    """The stand-in on 127.0.0.1; point VIP_API_BASE_URL at `base_url`."""

    def __init__(self, tls: TlsFiles | None = None):
        self.stand_in = StandIn()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.stand_in = self.stand_in
        self.httpd.client_certs = None
        scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.server_cert, tls.server_key)
            context.load_verify_locations(tls.ca)
            context.verify_mode = ssl.CERT_REQUIRED  # the VIP account's client certificate, or no answer
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            self.httpd.client_certs = []
            scheme = "https"
        self.port = self.httpd.server_address[1]
        self.base_url = f"{scheme}://127.0.0.1:{self.port}/vipuserservices"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="vip-stand-in", daemon=True)

    def add_token(self, credential_id: str) -> str:
        return self.stand_in.add_token(credential_id)

    @property
    def client_certs(self) -> list:
        return list(self.httpd.client_certs or [])

    def __enter__(self) -> VipServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stand_in.release.set()  # let a stalled handler finish now
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


def code(secret: str, at: float, offset: int = 0) -> str:
    """The code the app shows at `at` (a Unix time), `offset` steps later."""
    return pyotp.TOTP(secret, interval=STEP_SECONDS).generate_otp(int(at) // STEP_SECONDS + offset)
