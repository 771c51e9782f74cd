"""The one place that reads HX-* request headers and writes HX-* response headers."""

from __future__ import annotations

from flask import Flask, Response, redirect, render_template, request


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def wants_fragment(target: str | None = None) -> bool:
    """True for an HTMX request that swaps part of a page.

    Boosted navigation and history restores want the full page. With `target`, the request
    must also aim at that element id.
    """
    if not is_htmx():
        return False
    if request.headers.get("HX-Boosted") == "true" or request.headers.get("HX-History-Restore-Request") == "true":
        return False
    if target is not None and request.headers.get("HX-Target") != target:
        return False
    return True


def render(page: str, fragment: str, target: str | None = None, **context) -> str:
    """Render the fragment for an HTMX swap aimed at it, else the full page."""
    if wants_fragment(target):
        return render_template(fragment, **context) + render_template("_flash.html", oob=True)
    return render_template(page, **context)


def hx_redirect(location: str) -> Response:
    """Send the browser elsewhere: HX-Redirect for HTMX, a 303 otherwise."""
    if is_htmx():
        response = Response(status=204)
        response.headers["HX-Redirect"] = location
        return response
    return redirect(location, code=303)


def init_app(app: Flask) -> None:
    @app.after_request
    def vary_on_htmx(response: Response) -> Response:
        response.vary.add("HX-Request")
        return response
