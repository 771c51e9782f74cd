"""A stand-in for Symantec's VIP User Services: the requests the portal makes, answered from
memory, with codes computed like VIP Access computes them (RFC 6238: 30 s, 6 digits) from a
secret per credential that its owner (a test, or the dev outbox page) knows.

Used by the tests (tests/vip_server.py serves it over HTTP or HTTPS on loopback) and, in
development, inside the portal at /dev/vip (DEV_OUTBOX), so `make run` can show the whole
VIP Access path with the demo credentials below. Never part of production.

What it keeps to, as VIP does: users are created once (6002 after); AddCredential checks two
consecutive codes (otp, then otp2); a code at or before the last accepted time step is refused
(a replay, 6009) unless `accept_replays` is set, which lets tests prove the portal's own check.
`mode` makes every call fail: "error" (HTTP 500 with a SOAP fault), "internal" (status 6005),
"stall" (hold the request past any client timeout, then fail).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyotp

from portal.vip import soap

STEP_SECONDS = 30
WINDOW = 2  # steps either side accepted for clock drift
STALL_SECONDS = 5

# Development's demo credentials (Credential ID -> label); their secrets are derived below.
DEMO_CREDENTIALS = {"VSST12345678": "VIP Access on a desktop", "VSMT87654321": "VIP Access on a phone"}


def demo_secret(credential_id: str) -> str:
    return base64.b32encode(hashlib.sha256(f"portal-dev-vip:{credential_id}".encode()).digest()[:20]).decode()


@dataclass
class Credential:
    secret: str
    last_step: int | None = None

    def code_at(self, step: int) -> str:
        return pyotp.TOTP(self.secret, interval=STEP_SECONDS).generate_otp(step)

    def step_of(self, code: str, now: float, *, after: int | None) -> int | None:
        current = int(now) // STEP_SECONDS
        for step in range(current - WINDOW, current + WINDOW + 1):
            if (after is None or step > after) and self.code_at(step) == code:
                return step
        return None


@dataclass
class StandIn:
    """The service's state and its answers. Thread-safe."""

    state_path: Path | None = None  # development: bindings survive a restart
    mode: str = "ok"
    accept_replays: bool = False
    credentials: dict[str, Credential] = field(default_factory=dict)
    users: dict[str, set[str]] = field(default_factory=dict)
    calls: list[tuple[str, dict]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self):
        if self.state_path is not None and self.state_path.exists():
            saved = json.loads(self.state_path.read_text())
            self.credentials = {key: Credential(**value) for key, value in saved["credentials"].items()}
            self.users = {key: set(value) for key, value in saved["users"].items()}

    def add_token(self, credential_id: str, secret: str | None = None) -> str:
        """A credential VIP knows (as if issued to someone's app); returns its secret."""
        secret = secret or pyotp.random_base32(32)
        with self.lock:
            self.credentials.setdefault(credential_id, Credential(secret))
            return self.credentials[credential_id].secret

    def add_demo_tokens(self) -> None:
        for credential_id in DEMO_CREDENTIALS:
            self.add_token(credential_id, demo_secret(credential_id))

    def bound(self, user_id: str) -> set[str]:
        with self.lock:
            return set(self.users.get(user_id.lower(), ()))

    def _save(self) -> None:
        if self.state_path is not None:
            data = {"credentials": {key: vars(value) for key, value in self.credentials.items()},
                    "users": {key: sorted(value) for key, value in self.users.items()}}
            self.state_path.write_text(json.dumps(data))

    # -- answering ------------------------------------------------------------------------

    def handle(self, service: str, body: bytes, now: float | None = None) -> tuple[int, bytes]:
        """(HTTP status, SOAP body) for a request to `service` (e.g. ManagementService_1_10)."""
        now = time.time() if now is None else now
        if self.mode == "stall":
            self.release.wait(STALL_SECONDS)
            return 500, soap.fault("stalled")
        if self.mode == "error":
            return 500, soap.fault("Internal Server Error")
        try:
            request = soap.parse(body)
        except soap.ServiceUnavailable:
            return 500, soap.fault("Client: not a SOAP request")
        name = request.tag.rpartition("}")[2]
        operation = name.removesuffix("Request")
        if soap.SERVICE_OF.get(operation) != service:
            return 500, soap.fault(f"Client: {name} is not an operation of {service}")
        fields = soap.fields_of(request)
        request_id = fields.get("requestId", "")
        with self.lock:
            self.calls.append((operation, fields))
            if self.mode == "internal":
                status, message = "6005", "Internal error."
            else:
                status, message = getattr(self, f"_{operation}")(fields, now)
                self._save()
        return 200, soap.response(operation, request_id, status, message)

    def _user(self, fields) -> str:
        return str(fields.get("userId", "")).lower()  # VIP looks user ids up regardless of case

    def _CreateUser(self, fields, now):  # noqa: N802 - VIP's operation names
        user = self._user(fields)
        if user in self.users:
            return "6002", "User already exists."
        self.users[user] = set()
        return "0000", "Success"

    def _DeleteUser(self, fields, now):  # noqa: N802
        if self.users.pop(self._user(fields), None) is None:
            return "6003", "User doesn't exist."
        return "0000", "Success"

    def _AddCredential(self, fields, now):  # noqa: N802
        user = self._user(fields)
        if user not in self.users:
            return "6003", "User doesn't exist."
        detail = fields.get("credentialDetail") or {}
        credential = self.credentials.get(detail.get("credentialId", "") if isinstance(detail, dict) else "")
        if credential is None:
            return "6004", "Credential ID is not valid."
        otp = fields.get("otpAuthData") or {}
        first, second = (otp.get("otp"), otp.get("otp2")) if isinstance(otp, dict) else (None, None)
        after = None if self.accept_replays else credential.last_step
        step = credential.step_of(first or "", now, after=after)
        if step is None or second is None or credential.code_at(step + 1) != second \
                or (after is not None and step + 1 <= after):
            return "6009", "Authentication failed."
        credential.last_step = step + 1
        self.users[user].add(detail["credentialId"])
        return "0000", "Success"

    def _RemoveCredential(self, fields, now):  # noqa: N802
        user = self._user(fields)
        if user not in self.users:
            return "6003", "User doesn't exist."
        if fields.get("credentialId") not in self.users[user]:
            return "6007", "No binding exists between user and credential."
        self.users[user].discard(fields["credentialId"])
        return "0000", "Success"

    def _AuthenticateUser(self, fields, now):  # noqa: N802
        user = self._user(fields)
        if user not in self.users:
            return "6003", "User doesn't exist."
        if not self.users[user]:
            return "6008", "User does not have an enabled credential for the given credential type."
        otp = fields.get("otpAuthData") or {}
        code = otp.get("otp", "") if isinstance(otp, dict) else ""
        for credential_id in sorted(self.users[user]):
            credential = self.credentials[credential_id]
            step = credential.step_of(code, now, after=None if self.accept_replays else credential.last_step)
            if step is not None:
                credential.last_step = max(step, credential.last_step or step)
                return "0000", "Success"
        return "6009", "Authentication failed."


def current_codes(stand_in: StandIn, now: float | None = None) -> list[tuple[str, str, str, int]]:
    """(Credential ID, label, current code, seconds it has left) of the demo credentials."""
    now = time.time() if now is None else now
    step = int(now) // STEP_SECONDS
    left = STEP_SECONDS - int(now) % STEP_SECONDS
    return [(credential_id, label, Credential(demo_secret(credential_id)).code_at(step), left)
            for credential_id, label in DEMO_CREDENTIALS.items()]
