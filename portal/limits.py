"""Request rate limits (Flask-Limiter), named once and applied to the views that need them.

Per-address limits key on the client address (ProxyFix-derived). Per-account limits key on
the normalised email a form names, so one account cannot be hammered from many addresses.
The lasting protection is in the database (account locks), which no storage outage turns off.
"""

from __future__ import annotations

from flask import current_app, request

from portal.extensions import limiter


def _config(name: str):
    return lambda: current_app.config[name]


def _account_key() -> str:
    """The account a form names, in the canonical form the account lookup uses, so no case or
    Unicode variant that reaches the same account gets an allowance of its own."""
    from portal.accounts.users import canonical_email

    return f"account:{canonical_email(request.form.get('email') or '')[:254]}"


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
