"""The audit trail's MAC keys: `AUDIT_KEYS`, comma separated `id:base64key` pairs, newest first.

The sealer MACs new rows and signs checkpoints with the first key and stores its id in each row
(and each checkpoint); `flask audit verify` checks every row with the key its id names, so a key
can be rotated by putting a new one first. An older key must stay listed while rows sealed
under it are kept (six years): a row whose key is no longer listed cannot be verified and is
reported as a failure. Keys live in the environment (your secret store), never in the database.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from flask import Flask, current_app

from portal.audit.errors import AuditKeyError

MIN_KEY_BYTES = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


@dataclass(frozen=True)
class AuditKeys:
    current_id: str
    keys: dict[str, bytes]

    @property
    def current(self) -> bytes:
        return self.keys[self.current_id]

    def get(self, key_id: str | None) -> bytes | None:
        return self.keys.get(key_id) if key_id else None


def parse(values) -> AuditKeys:
    """Read `["id:base64key", ...]` (or one comma separated string), newest first."""
    if isinstance(values, str):
        values = [value for value in values.split(",")]
    keys: dict[str, bytes] = {}
    for value in (v.strip() for v in values or ()):
        if not value:
            continue
        key_id, colon, encoded = value.partition(":")
        if not colon or not _KEY_ID.match(key_id):
            raise AuditKeyError("AUDIT_KEYS: each key is id:base64key, the id 1-32 letters, digits, '_', '.' or '-'")
        try:
            secret = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError) as error:
            raise AuditKeyError(f"AUDIT_KEYS: key {key_id!r} is not valid base64") from error
        if len(secret) < MIN_KEY_BYTES:
            raise AuditKeyError(f"AUDIT_KEYS: key {key_id!r} is shorter than {MIN_KEY_BYTES} bytes")
        if key_id in keys:
            raise AuditKeyError(f"AUDIT_KEYS: key id {key_id!r} is listed twice")
        keys[key_id] = secret
    if not keys:
        raise AuditKeyError("AUDIT_KEYS holds no key")
    return AuditKeys(current_id=next(iter(keys)), keys=keys)


def init_app(app: Flask) -> None:
    """Parse AUDIT_KEYS once at start-up: a malformed key stops the start, not the first seal."""
    app.extensions["portal.audit.keys"] = parse(app.config.get("AUDIT_KEYS") or [])


def current_keys() -> AuditKeys:
    keys = current_app.extensions.get("portal.audit.keys")
    if keys is None:
        keys = parse(current_app.config.get("AUDIT_KEYS") or [])
        current_app.extensions["portal.audit.keys"] = keys
    return keys


def new_key_line(key_id: str) -> str:
    """A fresh `id:base64key` entry (for the docs' one-liner and `flask audit new-key`)."""
    import secrets

    return f"{key_id}:{base64.b64encode(secrets.token_bytes(MIN_KEY_BYTES)).decode()}"
