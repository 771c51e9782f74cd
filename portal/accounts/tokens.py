"""Signed, single-use link tokens.

A link carries `{"id": record id, "n": nonce}` signed with SECRET_KEY (salt per purpose).
The record stores only SHA-256 of the nonce; single use and expiry are enforced against the
record, so a leaked database cannot mint links and a used link cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer

from portal.accounts.errors import InvalidToken


def _serializer(purpose: str) -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=f"portal.{purpose}")


def digest(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def new_nonce() -> tuple[str, str]:
    """Return (nonce, digest) for a new record."""
    nonce = secrets.token_urlsafe(32)
    return nonce, digest(nonce)


def sign(purpose: str, record_id: int, nonce: str) -> str:
    return _serializer(purpose).dumps({"id": record_id, "n": nonce})


def unsign(purpose: str, token: str) -> tuple[int, str]:
    """Return (record id, nonce). Raises InvalidToken for a tampered or foreign token."""
    try:
        payload = _serializer(purpose).loads(token or "")
    except BadSignature as error:
        raise InvalidToken() from error
    if not isinstance(payload, dict) or not isinstance(payload.get("id"), int) or not isinstance(payload.get("n"), str):
        raise InvalidToken()
    return payload["id"], payload["n"]


def nonce_matches(stored_digest: str, nonce: str) -> bool:
    return hmac.compare_digest(stored_digest, digest(nonce))


def public_url(endpoint: str, **values) -> str:
    """An absolute link built from PUBLIC_BASE_URL, never from a request's Host header."""
    base = urlsplit(current_app.config["PUBLIC_BASE_URL"])
    adapter = current_app.url_map.bind(base.netloc, script_name=base.path or "/", url_scheme=base.scheme)
    return adapter.build(endpoint, values, force_external=True)
