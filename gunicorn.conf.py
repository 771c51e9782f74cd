"""gunicorn settings for the portal; every value can be overridden from the environment."""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Worker model: threads ("gthread"), GUNICORN_WORKERS processes of GUNICORN_THREADS threads.
# gunicorn runs behind nginx (deploy/nginx.conf, docs/DEPLOY.md), which reads each request in
# full before passing it on and takes each response in full, so slow clients never hold a
# worker; what a request waits on here is PostgreSQL, Redis and, at Log In and set-up, the SMS
# provider or the mail server (a code is sent inside the request, up to SMS_TIMEOUT_SECONDS or
# MAIL_TIMEOUT_SECONDS). Threads let a process serve other requests meanwhile, where a sync
# worker would sit idle; argon2id hashing, the one CPU-heavy step, releases the GIL. A few
# threads per process stay within SQLAlchemy's pool (5, plus 10 overflow). gevent would need
# every library (psycopg, redis, twilio) patched; sync stays available for debugging.
# With threads, GUNICORN_TIMEOUT watches each process, not each request: every outbound call
# has its own timeout for that reason. Without nginx in front, threads are no defence against
# slow clients: never expose gunicorn directly.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
accesslog = "-"
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss'
# The access log records no query strings, and masks the one-time tokens of invitation and
# password-reset links (they are part of the path).
logger_class = "portal.logging.PortalGunicornLogger"
# Whose X-Forwarded-Proto (and -Ssl, -Protocol) gunicorn believes, so a client cannot claim
# HTTPS: the same rule as the app's ProxyFix. No proxy (TRUSTED_PROXY_COUNT=0, the default):
# nobody, not even a client on this host. Behind proxies: their addresses, which must be given.
# (Connections over a Unix socket are always believed by gunicorn: bind one only for the proxy.)
if int(os.environ.get("TRUSTED_PROXY_COUNT") or 0) > 0:
    forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "").strip()
    if not forwarded_allow_ips:
        raise RuntimeError("TRUSTED_PROXY_COUNT is set: FORWARDED_ALLOW_IPS must list the proxies' addresses")
else:
    forwarded_allow_ips = ""

# Metrics (/metrics) in multi-process mode: each worker writes its counts to files in
# PROMETHEUS_MULTIPROC_DIR and a scrape adds them up. It must be set before the workers fork
# (this file is read first, by the master). Unset, each server start gets a fresh temporary
# directory; if you set it yourself, give every server its own directory and empty it before
# each start, or counts from an earlier run are added in.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="portal-metrics-")


def child_exit(server, worker):
    """A worker ended: drop its live gauge files (its counters stay in the totals)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
