"""Signed, single-use link tokens.

A link carries `{"id": record id, "n": nonce}` signed with SECRET_KEY (salt per purpose).
The record stores only SHA-256 of the nonce; single use and expiry are enforced against the
record, so a leaked database cannot mint links and a used link cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from urllib.parse import urlsplit

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import update

from portal.accounts.errors import InvalidToken, TokenUsed
from portal.extensions import db


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


def issue_link(record, purpose: str, endpoint: str) -> str:
    """Give a new invitation or reset record its nonce, add it (flushed, not committed) and
    return the emailed link to `endpoint`."""
    nonce, record.nonce_hash = new_nonce()
    db.session.add(record)
    db.session.flush()
    return public_url(endpoint, token=sign(purpose, record.id, nonce))


def load_record(column, purpose: str, token: str):
    """The record a link points to, if its signature and nonce match and it is unused.

    `column` is the record's "used" time (e.g. `PasswordReset.used_at`). Raises InvalidToken,
    TokenUsed; expiry and other rules are the caller's.
    """
    record_id, nonce = unsign(purpose, token)
    record = db.session.get(column.class_, record_id)
    if record is None or not nonce_matches(record.nonce_hash, nonce):
        raise InvalidToken()
    if getattr(record, column.key) is not None:
        raise TokenUsed()
    return record


def claim(column, record_id: int, now: datetime, *still) -> None:
    """Use up a link's record once: a conditional UPDATE of its "used" time, so of two
    concurrent uses exactly one wins; `still` are further conditions the record must meet at
    that moment (e.g. not revoked). Not committed. Raises TokenUsed (rolled back)."""
    table = column.class_
    claimed = db.session.execute(
        update(table).where(table.id == record_id, column.is_(None), *still).values({column.key: now})
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        db.session.rollback()
        raise TokenUsed()


def public_url(endpoint: str, **values) -> str:
    """An absolute link built from PUBLIC_BASE_URL, never from a request's Host header."""
    base = urlsplit(current_app.config["PUBLIC_BASE_URL"])
    adapter = current_app.url_map.bind(base.netloc, script_name=base.path or "/", url_scheme=base.scheme)
    return adapter.build(endpoint, values, force_external=True)
