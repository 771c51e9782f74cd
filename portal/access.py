"""Who may reach what: one gate for every request, plus role checks for blueprints.

Every endpoint is protected unless its view is marked `@public`. The gate runs before any
view, so fragments and HTMX endpoints are covered like full pages.
"""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, has_request_context, request, url_for
from flask_login import LoginManager, current_user
from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload

from portal.extensions import db
from portal.htmx import hx_redirect, is_htmx
from portal.wording import minutes


def public(view):
    """Mark a view as reachable without logging in."""
    view.is_public = True
    return view


def role_required(*roles: str, status: int = 403):
    """Allow only users with one of `roles`; others get `status` (404 hides the area)."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if current_user.role not in roles:
                abort(status)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def safe_next(target: str | None) -> str | None:
    """Return `target` if it is a local path on this site, else None (no open redirects)."""
    if not target or not isinstance(target, str) or len(target) > 2000:
        return None
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if any(ord(ch) < 32 for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def init_login_manager(login_manager: LoginManager) -> None:
    from portal.models import User

    login_manager.session_protection = None  # server-side sessions; ids are regenerated instead
    login_manager.login_view = "auth.login"
    # One statement for what nearly every page needs: the user, their method, their practice.
    # Built once: every request reuses its cache key and compiled SQL.
    load_statement = select(User).options(joinedload(User.mfa), joinedload(User.practice)).where(
        User.id == bindparam("uid"))

    @login_manager.user_loader
    def load_user(alternative_id: str):
        """Resolve "id:session_version"; an older version means the session was ended."""
        try:
            user_id, version = (int(part) for part in str(alternative_id).split(":"))
        except ValueError:
            return None
        user = db.session.scalar(load_statement, {"uid": user_id})
        if user is None or not user.active or user.session_version != version:
            return None
        return user


def init_app(app: Flask) -> None:
    @app.context_processor
    def requirement_banner():
        """Every page: the server's time, and for a user without MFA whose practice will require
        it, from when (the banner)."""
        from portal import clock
        from portal.mfa import policy

        signed_in = has_request_context() and current_user.is_authenticated  # not in emails rendered by tasks
        starts = policy.requirement_starts(current_user) if signed_in else None
        return {"now": clock.now(), "requirement_starts": starts}

    @app.before_request
    def require_login():
        if request.endpoint is None or request.endpoint == "static":
            return None
        if request.blueprint == "support" and not (current_user.is_authenticated and current_user.role == "support"):
            abort(404)  # the support area does not admit it exists
        view = app.view_functions.get(request.endpoint)
        if getattr(view, "is_public", False):
            if current_user.is_authenticated:
                # A session that ran out of time ends here too, and the page goes on for
                # someone signed out: Log In sent from a tab left open past the idle timeout
                # logs in, instead of being taken for the old session and sent away.
                _session_timeouts(redirect=False)
            return None
        if current_user.is_authenticated:
            return _session_timeouts() or _enrollment_gate()
        login_url = url_for("auth.login", next=_next_for_login())
        if is_htmx():
            response = hx_redirect(login_url)
            response.status_code = 401
            return response
        return hx_redirect(login_url)


def _session_timeouts(*, redirect: bool = True):
    """End sessions idle for 30 minutes or older than 12 hours, checked on the server; with
    `redirect`, answer with Log In and say why."""
    from flask import flash

    from portal import auth_state, clock
    from portal.accounts import signin

    now = clock.now()
    expired = auth_state.session_expired(now)
    if expired is None:
        return None
    signin.expire_session(current_user._get_current_object(), expired, now=now)
    idle = current_app.config["SESSION_IDLE_TIMEOUT"]
    if expired == "idle":
        flash(f"You were logged out after {minutes(idle)} minutes without activity. Log In again to continue.", "info")
    else:
        flash("Your session has ended. Log In again to continue.", "info")
    if not redirect:
        return None
    login_url = url_for("auth.login", next=_next_for_login())
    response = hx_redirect(login_url)
    if is_htmx():
        response.status_code = 401
    return response


# What a user who must enroll (practice requires MFA, or support staff) may still reach.
ENROLLMENT_ENDPOINTS = {"auth.logout"}
ENROLLMENT_BLUEPRINTS = {"security"}


def _enrollment_gate():
    """Until a required method is set up, everything but enrollment redirects there.

    Checked on every request, so turning a practice's requirement on reaches existing
    sessions at their next request.
    """
    from portal.mfa import policy

    if not policy.must_enroll(current_user):
        return None
    if request.endpoint in ENROLLMENT_ENDPOINTS or request.blueprint in ENROLLMENT_BLUEPRINTS:
        return None
    return hx_redirect(url_for("security.show_security"))


def _next_for_login() -> str | None:
    if request.method != "GET" or is_htmx():
        return None
    return safe_next(request.full_path.rstrip("?"))


__all__ = ["current_app", "init_app", "init_login_manager", "public", "role_required", "safe_next"]
