"""The fresh password confirmation that guards Account Settings | Security.

Checked by the server on every request that shows or changes MFA, not only when a page loads.
"""

from __future__ import annotations

from datetime import datetime

from flask import current_app, session

from portal.sessions import regenerate_session_id

KEY = "reauth_at"


def mark_fresh(now: datetime, *, new_session_id: bool = True) -> None:
    session[KEY] = int(now.timestamp())
    if new_session_id:
        regenerate_session_id(current_app, session)


def is_fresh(now: datetime) -> bool:
    at = session.get(KEY)
    if not isinstance(at, int):
        return False
    age = now.timestamp() - at
    return 0 <= age <= current_app.config["MFA_REAUTH_TTL"].total_seconds()


def seconds_left(now: datetime) -> int:
    at = session.get(KEY) or 0
    return max(0, int(current_app.config["MFA_REAUTH_TTL"].total_seconds() - (now.timestamp() - at)))
