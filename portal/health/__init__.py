"""Health checks for a load balancer: liveness and readiness."""

from flask import Blueprint

bp = Blueprint("health", __name__)

from portal.health import routes  # noqa: E402,F401
