"""What the current session has proven, and when: the one home of sign-in state.

Everything here lives in the server-side session (the cookie carries only its id):

- the pending Log In ("password correct, code still needed"), which names the user but grants
  nothing: Flask-Login does not know the user yet, so the gate treats the visitor as
  anonymous everywhere except the code page, resend and Log In; it dies after
  MFA_PENDING_LOGIN_TTL and resending a code does not extend it;
- the session clock: when the Log In completed and when the session was last seen, for the
  absolute and idle timeouts;
- proofs: a fresh password (the Security tab) or a fresh password and code (support work),
  each with the time it was given, valid for its configured lifetime.

A step up in what the session may do (a completed Log In, a proof) gets a new session id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps

from flask import current_app, g, session
from flask_login import login_user, logout_user
from flask_wtf.csrf import generate_csrf
from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload

from portal import audit, clock
from portal.extensions import db
from portal.mfa import codes
from portal.models import User
from portal.sessions import regenerate_session_id

PENDING = "mfa_pending"
STARTED = "started_at"
SEEN = "seen_at"


@dataclass(frozen=True)
class Proof:
    """Something the session proved recently, kept as the time it was proven."""

    key: str
    ttl_setting: str

    def ttl(self) -> timedelta:
        return current_app.config[self.ttl_setting]


PASSWORD = Proof("reauth_at", "MFA_REAUTH_TTL")  # opens Account Settings | Security
PASSWORD_AND_CODE = Proof("support_confirmed_at", "SUPPORT_CONFIRM_TTL")  # opens the support area


# -- starting over and completing a Log In ------------------------------------------------


def renew_session() -> None:
    """Start over: a new session id and no data (before a login changes who is signed in)."""
    regenerate_session_id(current_app, session)
    session.clear()
    # A new CSRF token for the new session, written with it: the next page need not save again.
    g.pop(current_app.config["WTF_CSRF_FIELD_NAME"], None)
    generate_csrf()


def complete_login(user: User, now: datetime, *, method: str | None = None, record: bool = True,
                   password_fresh: bool = False) -> None:
    """Sign `user` in fully: a new session id, Flask-Login, the session clock.

    With `record`, the "login.succeeded" event (naming the `method` used, None without MFA)
    is committed together with whatever the caller's transaction holds (the code just
    used), and the user stays loaded. Without it the caller has committed its own work (a
    Log In that must enroll first, or a renewed login after an MFA change).
    `password_fresh` lets the password just entered count as the Security tab's proof.
    """
    if record:
        audit.record("login.succeeded", actor=user, subject=user, now=now, detail={"method": method})
        _commit_keeping(user)
    renew_session()
    login_user(user)
    session[STARTED] = session[SEEN] = int(now.timestamp())
    if password_fresh:
        mark_proven(PASSWORD, now, new_session_id=False)


def _commit_keeping(user: User) -> None:
    """Commit without expiring what the session holds: Log In goes on with this user (its id
    and session version) and need not read it back. A session version changed meanwhile by
    support fails closed: the next request finds it stale and signs the session out."""
    orm_session = db.session()
    previous, orm_session.expire_on_commit = orm_session.expire_on_commit, False
    try:
        orm_session.commit()
    finally:
        orm_session.expire_on_commit = previous


def end_session() -> None:
    """Forget who is signed in and everything the session held (also a half-finished Log In)."""
    logout_user()
    session.clear()


# -- the pending Log In ----------------------------------------------------------------------

# The user with their method, in one statement built once (the code page runs it on every request).
_PENDING_USER = select(User).options(joinedload(User.mfa)).where(User.id == bindparam("uid"))


def start_pending(user: User, *, next_url: str | None, now: datetime) -> dict:
    """Begin the code step in a fresh session id. Returns the state (with its challenge)."""
    renew_session()
    session[PENDING] = {
        "uid": user.id,
        "ver": user.session_version,
        "at": int(now.timestamp()),
        "challenge": codes.new_challenge(),
        "next": next_url or "",
    }
    return session[PENDING]


def pending_login(now: datetime) -> tuple[User | None, dict | None, bool]:
    """Return (user, state, expired). An expired or stale state is removed."""
    state = session.get(PENDING)
    if not isinstance(state, dict):
        return None, None, False
    age = now.timestamp() - state.get("at", 0)
    if age > current_app.config["MFA_PENDING_LOGIN_TTL"].total_seconds() or age < -60:
        session.pop(PENDING, None)
        return None, None, True
    uid = state.get("uid")
    user = db.session.scalar(_PENDING_USER, {"uid": uid}) if isinstance(uid, int) else None
    if user is None or not user.active or user.session_version != state.get("ver") or user.mfa is None:
        session.pop(PENDING, None)
        return None, None, True
    return user, state, False


# -- the session clock -----------------------------------------------------------------------


def session_expired(now: datetime) -> str | None:
    """Why the signed-in session is over ("idle", "absolute", "missing"), or None.

    A live session's last-seen time is written at most once a minute.
    """
    now_ts = int(now.timestamp())
    started, seen = session.get(STARTED), session.get(SEEN)
    config = current_app.config
    if not isinstance(started, int) or not isinstance(seen, int):
        return "missing"
    if now_ts - started > config["SESSION_ABSOLUTE_TIMEOUT"].total_seconds():
        return "absolute"
    if now_ts - seen > config["SESSION_IDLE_TIMEOUT"].total_seconds():
        return "idle"
    if now_ts - seen >= 60:
        session[SEEN] = now_ts
    return None


# -- proofs ----------------------------------------------------------------------------------


def mark_proven(proof: Proof, now: datetime, *, new_session_id: bool = True) -> None:
    """Record the proof, in a new session id unless the caller just made one."""
    session[proof.key] = int(now.timestamp())
    if new_session_id:
        regenerate_session_id(current_app, session)


def proven_within(proof: Proof, now: datetime, seconds: float | None = None) -> bool:
    """True if the proof was given no longer than `seconds` ago (default: its lifetime)."""
    at = session.get(proof.key)
    if not isinstance(at, int):
        return False
    limit = proof.ttl().total_seconds() if seconds is None else seconds
    return 0 <= now.timestamp() - at <= limit


def seconds_left(proof: Proof, now: datetime) -> int:
    """How long the proof still holds (0 when it does not)."""
    if not proven_within(proof, now):
        return 0
    return max(0, int(proof.ttl().total_seconds() - (now.timestamp() - session[proof.key])))


def fresh_required(proof: Proof, on_stale: Callable):
    """Run the view only while `proof` holds; otherwise answer with `on_stale()`.

    Checked by the server on every request it guards, not only when a page loads.
    """

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not proven_within(proof, clock.now()):
                return on_stale()
            return view(*args, **kwargs)

        return wrapped

    return decorator
