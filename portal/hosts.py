"""The portal answers only for its own host names (`TRUSTED_HOSTS`).

Flask 3.1 checks `TRUSTED_HOSTS` itself, but too late and too bluntly for the portal: an
untrusted Host makes Werkzeug raise SecurityError (a 400) while the request context is being
built, so the request has no URL adapter, the before_request hooks still run, and the error
page cannot even build its stylesheet's URL (a 500); health checks could not be exempted
either. So the check happens here, first, in front of Flask:

- `HostGuard` (WSGI middleware) looks at the Host header (or the server's name without
  one). An untrusted one is replaced by the portal's own host before Flask sees it, so
  nothing in the request (URLs, the CSRF referrer check, Flask's own check) ever reads the
  client's value, and the request is marked.
- The first before_request hook answers a marked request with the usual 400 page.
- `/healthz`, `/readyz` and `/metrics` are exempt: load balancers and Prometheus reach an
  instance by its address, not the public name; these answer fixed JSON or counts (the
  metrics only to METRICS_ALLOWED_NETWORKS), build no URL and set no cookie.
"""

from __future__ import annotations

from flask import Flask, abort, request
from werkzeug.sansio.utils import host_is_trusted

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_UNTRUSTED = "portal.untrusted_host"


def requested_host(environ) -> str:
    """The Host the client asked for: the header, else the server's name and port."""
    host = environ.get("HTTP_HOST")
    if host is None:
        host = f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}".rstrip(":")
    return host


class HostGuard:
    """WSGI middleware: requests for another host reach Flask marked, with the portal's host."""

    def __init__(self, wsgi_app, trusted: list[str]):
        self.wsgi_app = wsgi_app
        self.trusted = [host.lower() for host in trusted]
        self.own_host = self.trusted[0].lstrip(".")

    def __call__(self, environ, start_response):
        host = requested_host(environ).lower()  # host names ignore case
        if host_is_trusted(host, self.trusted):
            environ = {**environ, "HTTP_HOST": host}
        else:
            environ = {**environ, "HTTP_HOST": self.own_host}
            if environ.get("PATH_INFO") not in EXEMPT_PATHS:
                environ[_UNTRUSTED] = True
        return self.wsgi_app(environ, start_response)


def init_app(app: Flask) -> None:
    """With TRUSTED_HOSTS set (production: the host of PUBLIC_BASE_URL unless given), put the
    guard in front of the app and refuse marked requests before anything else runs."""
    trusted = app.config.get("TRUSTED_HOSTS")
    if not trusted:
        return
    app.wsgi_app = HostGuard(app.wsgi_app, trusted)

    @app.before_request
    def refuse_other_hosts():
        if request.environ.get(_UNTRUSTED):
            abort(400)
