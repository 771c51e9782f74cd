"""The "password correct, code still needed" state of a Log In, kept in the server session.

It names the user but grants nothing: Flask-Login does not know the user yet, so the gate
treats the visitor as anonymous everywhere except the code page, resend and Log In. It dies
10 minutes after the password step; resending a code does not extend it.
"""

from __future__ import annotations

from datetime import datetime

from flask import current_app, session
from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload

from portal.extensions import db
from portal.mfa import codes
from portal.models import User
from portal.sessions import renew_session

KEY = "mfa_pending"

# The user with their method, in one statement built once (the code page runs it on every request).
_USER = select(User).options(joinedload(User.mfa)).where(User.id == bindparam("uid"))


def start(user: User, *, next_url: str | None, now: datetime) -> dict:
    """Begin the code step in a fresh session id. Returns the state (with its challenge)."""
    renew_session()
    session[KEY] = {
        "uid": user.id,
        "ver": user.session_version,
        "at": int(now.timestamp()),
        "challenge": codes.new_challenge(),
        "next": next_url or "",
    }
    return session[KEY]


def current(now: datetime) -> tuple[User | None, dict | None, bool]:
    """Return (user, state, expired). An expired or stale state is removed."""
    state = session.get(KEY)
    if not isinstance(state, dict):
        return None, None, False
    age = now.timestamp() - state.get("at", 0)
    if age > current_app.config["MFA_PENDING_LOGIN_TTL"].total_seconds() or age < -60:
        clear()
        return None, None, True
    uid = state.get("uid")
    user = db.session.scalar(_USER, {"uid": uid}) if isinstance(uid, int) else None
    if user is None or not user.active or user.session_version != state.get("ver") or user.mfa is None:
        clear()
        return None, None, True
    return user, state, False


def clear() -> None:
    session.pop(KEY, None)
