"""Who may enter the support area, from where, and how recently they proved it."""

from __future__ import annotations

import ipaddress
from datetime import datetime

from flask import current_app, request, session

CONFIRMED_KEY = "support_confirmed_at"


def network_allowed() -> bool:
    """True when SUPPORT_ALLOWED_NETWORKS is unset or holds the client address.

    The address is the one ProxyFix derived from TRUSTED_PROXY_COUNT proxies; a raw
    X-Forwarded-For header is never read here.
    """
    networks = current_app.config["SUPPORT_ALLOWED_NETWORKS"]
    if not networks:
        return True
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network, strict=False) for network in networks)


def mark_confirmed(now: datetime) -> None:
    """Record the confirmation in a new session id (a step up in privilege)."""
    from portal.sessions import regenerate_session_id

    session[CONFIRMED_KEY] = int(now.timestamp())
    regenerate_session_id(current_app, session)


def is_confirmed(now: datetime) -> bool:
    at = session.get(CONFIRMED_KEY)
    if not isinstance(at, int):
        return False
    return 0 <= now.timestamp() - at <= current_app.config["SUPPORT_CONFIRM_TTL"].total_seconds()
