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
    """The database (and Redis, when configured) can be reached: safe to send traffic here."""
    checks = {"database": _check_database()}
    redis_urls = {current_app.config.get("SESSION_REDIS_URL"), _redis_storage()} - {None}
    if redis_urls:
        checks["redis"] = all(_check_redis(url) for url in redis_urls)
    ready = all(checks.values())
    response = jsonify(status="ready" if ready else "unavailable",
                       checks={k: "ok" if v else "failed" for k, v in checks.items()})
    response.status_code = 200 if ready else 503
    if not ready:
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
    return uri if uri.startswith(("redis://", "rediss://")) else None


def _check_database() -> bool:
    try:
        db.session.execute(text("SELECT 1"))
        return True
    except Exception:
        db.session.rollback()
        current_app.logger.warning("readiness: database unreachable")
        return False


def _check_redis(url: str) -> bool:
    from redis import Redis
    from redis.exceptions import RedisError

    try:
        client = Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (RedisError, OSError):
        current_app.logger.warning("readiness: redis unreachable")
        return False
