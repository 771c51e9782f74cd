"""Where the support area may be reached from (what the session has proven: `portal.auth_state`)."""

from __future__ import annotations

import ipaddress

from flask import current_app, request


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
