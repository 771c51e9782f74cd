"""Security headers on every response, and no caching of pages about a signed-in person."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, redirect, request

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def https_url(public_base_url: str) -> str:
    """This request's address on HTTPS at the portal's configured host (PUBLIC_BASE_URL),
    never at the Host the request named."""
    asked = urlsplit(request.url)
    return asked._replace(scheme="https", netloc=urlsplit(public_base_url).netloc).geturl()


def init_app(app: Flask) -> None:
    @app.before_request
    def require_https():
        if not app.config.get("REQUIRE_HTTPS") or request.is_secure:
            return None
        if request.endpoint in ("health.liveness", "health.readiness", "health.metrics"):
            return None
        return redirect(https_url(app.config["PUBLIC_BASE_URL"]), code=308)

    @app.after_request
    def add_security_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if app.config.get("SESSION_COOKIE_SECURE"):
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if request.endpoint != "static":
            # Every page is either an authentication page or about a signed-in person.
            response.headers["Cache-Control"] = "no-store"
        return response
