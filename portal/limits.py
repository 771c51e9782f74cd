"""Request rate limits (Flask-Limiter), named once and applied to the views that need them.

Per-address limits key on the client address (ProxyFix-derived). Per-account limits key on
the normalised email a form names, so one account cannot be hammered from many addresses.
The lasting protection is in the database (account locks), which no storage outage turns off.

When the limits' storage (Redis) fails, Flask-Limiter counts in this process's memory until it
answers again (RATELIMIT_IN_MEMORY_FALLBACK_ENABLED); `init_app` makes each switch a warning
in the portal's log and a count in `portal_ratelimit_fallbacks_total`, and each recovery an
info line.
"""

from __future__ import annotations

import logging

from flask import current_app, request

from portal import metrics
from portal.extensions import limiter

# Flask-Limiter's own lines (logger "flask-limiter") for a switch to memory and for a recovery.
_FELL_BACK = "falling back to in-memory storage"
_RECOVERED = "storage recovered"


class _ReportFallbacks(logging.Filter):
    """Turn Flask-Limiter's lines about its storage into the portal's (counted) own."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _FELL_BACK in message:
            metrics.ratelimit_fallback()
            logging.getLogger("portal").warning(
                "rate limits: their storage cannot be reached; counting in this process's memory until it answers")
            return False
        if _RECOVERED in message:
            logging.getLogger("portal").info("rate limits: their storage answers again; counting there")
            return False
        return True


def init_app(app) -> None:
    """Report the limits' fallbacks to memory (once per process, whatever the number of apps)."""
    library = logging.getLogger("flask-limiter")
    if not any(isinstance(existing, _ReportFallbacks) for existing in library.filters):
        library.addFilter(_ReportFallbacks())


def _config(name: str):
    return lambda: current_app.config[name]


def _account_key() -> str:
    """The account a form names, in the canonical form the account lookup uses, so no case or
    Unicode variant that reaches the same account gets an allowance of its own."""
    from portal.accounts.users import canonical_email

    return f"account:{canonical_email(request.form.get('email') or '')[:254]}"


def _user_key() -> str:
    """The logged-in user (their address if nobody is logged in)."""
    from flask_limiter.util import get_remote_address
    from flask_login import current_user

    return f"user:{current_user.id}" if current_user.is_authenticated else get_remote_address()


def _exempt_get() -> bool:
    return request.method not in ("POST",)


login_per_address = limiter.limit(_config("LIMIT_LOGIN_PER_ADDRESS"), exempt_when=_exempt_get)
login_per_account = limiter.limit(_config("LIMIT_LOGIN_PER_ACCOUNT"), key_func=_account_key, exempt_when=_exempt_get)
code_per_address = limiter.limit(_config("LIMIT_CODE_PER_ADDRESS"), exempt_when=_exempt_get)
# Password re-entry: the Security tab's confirmation and support's password-and-code.
reauth_per_address = limiter.limit(_config("LIMIT_REAUTH_PER_ADDRESS"), exempt_when=_exempt_get)
reset_per_address = limiter.limit(_config("LIMIT_RESET_PER_ADDRESS"), exempt_when=_exempt_get)
reset_per_account = limiter.limit(_config("LIMIT_RESET_PER_ACCOUNT"), key_func=_account_key, exempt_when=_exempt_get)
link_per_address = limiter.limit(_config("LIMIT_LINK_PER_ADDRESS"))
lost_access_per_address = limiter.limit(_config("LIMIT_LOST_ACCESS_PER_ADDRESS"), exempt_when=_exempt_get)
invitation_resend_per_user = limiter.limit(_config("LIMIT_INVITATION_RESEND_PER_USER"), key_func=_user_key,
                                           exempt_when=_exempt_get)
