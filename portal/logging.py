"""Logging that never writes secrets: the gunicorn access log masks link tokens, and the
portal's own log lines carry the request's id, route (the endpoint name, never the path with
its tokens), status, duration and user id, never an email, a phone number or a code.

`LOG_FORMAT` picks the shape: "json" (one JSON object per line, production's default) or
"text" (development and tests). Every portal log line goes to stderr; `init_app` also writes
one access line per request (logger "portal.access"; health checks and scrapes at DEBUG).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from datetime import UTC, datetime

from flask import Flask, g, has_request_context, request
from flask.logging import default_handler
from gunicorn.glogging import Logger

FORMATS = ("json", "text")
# Fields a request's log lines may carry, in this order; nothing else from a record is written.
REQUEST_FIELDS = ("request_id", "method", "route", "status", "duration_ms", "user_id")
ACCESS_LOGGER = "portal.access"
_QUIET_ENDPOINTS = ("health.liveness", "health.readiness", "health.metrics")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request fields present,
    and the traceback of an exception (newlines escaped, so still one line)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in REQUEST_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """A readable line: time, level, logger, message, then the request fields as key=value."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(f"{field}={getattr(record, field)}" for field in REQUEST_FIELDS
                          if field not in ("method", "route", "status") and getattr(record, field, None) is not None)
        if not fields:
            return line
        first, newline, rest = line.partition("\n")  # keep a traceback below the line it belongs to
        return f"{first} {fields}{newline}{rest}"


class _RequestId(logging.Filter):
    """Give every line written during a request that request's id."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None and has_request_context():
            record.request_id = g.get("request_id")
        return True


class _Stderr:
    """sys.stderr as it is when a line is written (a test may have replaced it)."""

    def write(self, text: str) -> None:
        sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def formatter(name: str) -> logging.Formatter:
    return JsonFormatter() if name == "json" else TextFormatter()


def init_app(app: Flask) -> None:
    """Send the portal's log lines to stderr in LOG_FORMAT and log each request once.

    Raises RuntimeError for an unknown LOG_FORMAT. Every app of the process shares the
    "portal" logger, so building another app replaces the handler rather than adding one.
    In JSON, when nothing else has configured logging (gunicorn), the handler goes on the root
    logger, so the libraries' warnings are JSON lines too; otherwise the portal's lines go out
    through it alone, never again through another tool's handler in another format.
    """
    name = app.config["LOG_FORMAT"]
    if name not in FORMATS:
        raise RuntimeError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {name!r}")
    logger = logging.getLogger(app.import_name)
    root = logging.getLogger()
    for owner in (logger, root):
        for handler in list(owner.handlers):
            if handler is default_handler or getattr(handler, "portal", False):
                owner.removeHandler(handler)
    handler = logging.StreamHandler(_Stderr())
    handler.portal = True
    handler.setFormatter(formatter(name))
    handler.addFilter(_RequestId())
    if name == "json" and not root.handlers:
        root.addHandler(handler)
        logger.propagate = True
    else:
        logger.addHandler(handler)
        logger.propagate = name != "json"  # text lines also reach the root (tests read them there)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.DEBUG if app.debug else logging.INFO)
    access = logging.getLogger(ACCESS_LOGGER)
    dev_server = logging.getLogger("werkzeug")
    if not any(isinstance(existing, MaskLinkTokens) for existing in dev_server.filters):
        dev_server.addFilter(MaskLinkTokens())

    def start_timer():
        g.log_started = time.perf_counter()

    # First of all before_request hooks, so a request another hook answers is timed too.
    app.before_request_funcs.setdefault(None, []).insert(0, start_timer)

    @app.after_request
    def log_request(response):
        started = g.get("log_started")
        user = g.get("_login_user")  # only if this request loaded one: logging never loads a user
        level = logging.DEBUG if request.endpoint in _QUIET_ENDPOINTS else logging.INFO
        access.log(level, "%s %s %s", request.method, request.endpoint or "-", response.status_code, extra={
            "method": request.method,
            "route": request.endpoint,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1) if started is not None else None,
            "user_id": user.id if getattr(user, "is_authenticated", False) else None,
        })
        return response


def json_logs_from_environment() -> bool:
    """For gunicorn, which logs before any app exists: LOG_FORMAT, else json in production."""
    name = os.environ.get("LOG_FORMAT") or ("json" if os.environ.get("PORTAL_CONFIG", "production") == "production"
                                            else "text")
    return name == "json"


_TOKEN_PATH = re.compile(r"^/(invitations|reset-password)/[^/?\s]+")
_TOKEN_ANYWHERE = re.compile(r"/(invitations|reset-password)/[^/?\s\"]+")
_QUERY = re.compile(r"([A-Z]+ /[^?\s\"]*)\?[^\s\"]*")


def mask_path(path: str) -> str:
    return _TOKEN_PATH.sub(r"/\1/[token]", path or "")


def mask_tokens(text: str) -> str:
    """Mask every invitation or reset token in a line (a request line, an error message)."""
    return _TOKEN_ANYWHERE.sub(r"/\1/[token]", text or "")


class MaskLinkTokens(logging.Filter):
    """The development server's request log (werkzeug's, under `flask run`) as gunicorn's:
    link tokens masked and no query string on the request line."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_tokens(_QUERY.sub(r"\1", record.getMessage()))
        record.args = ()
        return True


class PortalGunicornLogger(Logger):
    def setup(self, cfg):
        super().setup(cfg)
        if json_logs_from_environment():  # gunicorn's own lines are JSON too, one per line
            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    handler.setFormatter(JsonFormatter())

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("U", "r"):
            if key in atoms:
                atoms[key] = mask_path(atoms[key]) if key == "U" else mask_tokens(atoms[key])
        return atoms
