from flask import abort, current_app, jsonify, request
from sqlalchemy import text

from portal import metrics
from portal.access import public
from portal.extensions import db
from portal.health import bp


@bp.route("/healthz")
@public
def liveness():
    """The process is up and answering (no dependencies checked)."""
    return jsonify(status="ok")


@bp.route("/readyz")
@public
def readiness():
    """Can this instance serve pages? Each dependency is named with "ok" or "failed".

    The database and the session store (Redis, when SESSION_REDIS_URL is set) are needed for
    every page: either failing answers 503. The rate limits' Redis is reported too, but the
    portal serves without it (the limits count in memory meanwhile): "degraded", still 200, so
    a load balancer does not take every instance out over it.
    """
    checks = {"database": _check_database()}
    session_url = current_app.config.get("SESSION_REDIS_URL")
    if session_url:
        checks["session_store"] = _check_redis(session_url, "session store")
    needed = all(checks.values())
    limits_url = _redis_storage()
    if limits_url:
        checks["rate_limit_store"] = _check_redis(limits_url, "rate limits' storage")
    status = "unavailable" if not needed else "ready" if all(checks.values()) else "degraded"
    response = jsonify(status=status, checks={k: "ok" if v else "failed" for k, v in checks.items()})
    response.status_code = 200 if needed else 503
    if not needed:
        response.headers["Retry-After"] = "5"
    return response


@bp.route("/metrics", endpoint="metrics")
@public
def metrics_text():
    """Counts for Prometheus, only to METRICS_ALLOWED_NETWORKS; anyone else gets the usual 404."""
    if not metrics.allowed(request.remote_addr):
        abort(404)
    body, content_type = metrics.exposition()
    return body, 200, {"Content-Type": content_type}


def _redis_storage() -> str | None:
    uri = current_app.config.get("RATELIMIT_STORAGE_URI") or ""
    return uri if uri.startswith(("redis://", "rediss://", "redis+sentinel://")) else None


def _check_database() -> bool:
    try:
        db.session.execute(text("SELECT 1"))
        return True
    except Exception:
        db.session.rollback()
        current_app.logger.warning("readiness: database unreachable")
        return False


def _check_redis(url: str, name: str) -> bool:
    from redis.exceptions import RedisError

    from portal import redis_client

    try:
        client = redis_client.connect(url, timeout=current_app.config["SESSION_REDIS_TIMEOUT"])
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (RedisError, OSError, ValueError) as error:
        current_app.logger.warning("readiness: the %s cannot be reached (%s)", name, type(error).__name__)
        return False
