"""A stand-in for Twilio's Messages API on loopback, for testing SMS delivery for real over HTTP.

It answers the one call the portal makes, create a message:

    POST /2010-04-01/Accounts/{AccountSid}/Messages.json   (form: To, From, Body; basic auth)

with 201 and a JSON body shaped like Twilio's. `mode` switches it to answer 500 ("error") or to
hold the request longer than any client timeout ("stall"). Every request is recorded.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

API_VERSION = "2010-04-01"
STALL_SECONDS = 5  # longer than the client timeout the tests configure; cut short on shutdown


@dataclass
class Received:
    method: str
    path: str
    headers: dict
    form: dict
    username: str | None
    password: str | None


@dataclass
class _State:
    account_sid: str
    auth_token: str
    mode: str = "ok"
    requests: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)


class _Handler(BaseHTTPRequestHandler):
    server_version = "TwilioStandIn/1.0"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
        pass

    @property
    def state(self) -> _State:
        return self.server.state

    def do_POST(self):  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        form = {key: values[0] for key, values in parse_qs(self.rfile.read(length).decode()).items()}
        username, password = _basic_auth(self.headers.get("Authorization"))
        with self.state.lock:
            self.state.requests.append(
                Received("POST", self.path, dict(self.headers), form, username, password)
            )
            mode = self.state.mode

        if mode == "stall":
            self.state.release.wait(STALL_SECONDS)
            mode = "error"
        if mode == "error":
            return self._json(500, {"code": 20500, "message": "Internal Server Error", "status": 500,
                                    "more_info": "https://www.twilio.com/docs/errors/20500"})
        if (username, password) != (self.state.account_sid, self.state.auth_token):
            return self._json(401, {"code": 20003, "message": "Authenticate", "status": 401,
                                    "more_info": "https://www.twilio.com/docs/errors/20003"})
        expected = f"/{API_VERSION}/Accounts/{self.state.account_sid}/Messages.json"
        if self.path != expected:
            return self._json(404, {"code": 20404, "message": "The requested resource was not found",
                                    "status": 404, "more_info": "https://www.twilio.com/docs/errors/20404"})
        missing = [name for name in ("To", "Body") if not form.get(name)]
        if missing or not (form.get("From") or form.get("MessagingServiceSid")):
            return self._json(400, {"code": 21604, "message": f"Missing parameter {missing}", "status": 400,
                                    "more_info": "https://www.twilio.com/docs/errors/21604"})
        return self._json(201, self._message(form))

    def do_GET(self):  # noqa: N802
        self._json(404, {"code": 20404, "message": "Not found", "status": 404})

    def _message(self, form: dict) -> dict:
        sid = "SM" + secrets.token_hex(16)
        now = "Mon, 04 Mar 2030 09:00:00 +0000"
        account = self.state.account_sid
        uri = f"/{API_VERSION}/Accounts/{account}/Messages/{sid}.json"
        return {
            "account_sid": account,
            "api_version": API_VERSION,
            "body": form["Body"],
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": form["To"],
            "uri": uri,
        }

    def _json(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (the stall test): nothing to deliver


def _basic_auth(header: str | None) -> tuple[str | None, str | None]:
    if not header or not header.startswith("Basic "):
        return None, None
    try:
        username, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return None, None
    return username, password


class SMSServer:
    """`with SMSServer(sid, token) as sms:` then point TWILIO_API_BASE_URL at `sms.base_url`."""

    def __init__(self, account_sid: str, auth_token: str):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.state = _State(account_sid, auth_token)
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="sms-stand-in", daemon=True)

    @property
    def mode(self) -> str:
        return self.httpd.state.mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in {"ok", "error", "stall"}:
            raise ValueError(value)
        self.httpd.state.mode = value

    @property
    def requests(self) -> list[Received]:
        with self.httpd.state.lock:
            return list(self.httpd.state.requests)

    @property
    def messages(self) -> list[dict]:
        """The form of every message-create call received, oldest first."""
        return [r.form for r in self.requests if r.path.endswith("/Messages.json")]

    def __enter__(self) -> SMSServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.state.release.set()  # let a stalled handler finish now
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
