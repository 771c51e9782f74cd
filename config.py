"""Settings for the portal, read from environment variables.

Pick a class with ``PORTAL_CONFIG`` (development, testing, production). Production is the
default so that a server started without configuration refuses to run on unsafe defaults.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"

DEV_SECRET_KEY = "development-only-secret-key-do-not-deploy"
DEV_MFA_KEY = "ZGV2ZWxvcG1lbnQtb25seS1tZmEta2V5LWRvLW5vdCE="
# Fixed audit MAC keys (id:base64) for development and the tests; production refuses both.
DEV_AUDIT_KEY = "dev:ZGV2ZWxvcG1lbnQtb25seS1hdWRpdC1rZXktZG8tbm90LWRlcGxveQ=="
TEST_AUDIT_KEY = "test:dGVzdGluZy1vbmx5LWF1ZGl0LWtleS1uZXZlci1pbi1wcm9kdWN0aW9u"

# OWASP Password Storage Cheat Sheet: argon2id pairs of (memory KiB, iterations) that meet
# the minimum, with parallelism 1. Production must meet one of them.
OWASP_ARGON2_MINIMUMS = ((47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5))


def _bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def _list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def redis_fail_fast(timeout: float) -> dict:
    """Options of a Redis client that gives up after `timeout` seconds (to connect, and per
    reply) and never retries: redis-py's default of three retries with back-off would hold a
    request four times as long on a Redis that is down or hung."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return {"socket_timeout": timeout, "socket_connect_timeout": timeout, "retry": Retry(NoBackoff(), 0)}


def database_url(url: str | None) -> str:
    """Normalise a database URL so PostgreSQL always goes through psycopg 3."""
    if not url:
        INSTANCE_DIR.mkdir(exist_ok=True)
        return f"sqlite:///{INSTANCE_DIR / 'portal.db'}"
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


class Config:
    ENV_NAME = "production"
    PORTAL_NAME = os.environ.get("PORTAL_NAME", "Practice Portal")
    SECRET_KEY = os.environ.get("SECRET_KEY")
    # Base URL for links in emails; never taken from the request's Host header.
    PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:5000")
    # Host names the portal answers for (portal/hosts.py); any other Host gets a 400. A name
    # starting with "." also admits its subdomains. Unset: any host (production: see there).
    TRUSTED_HOSTS = _list("TRUSTED_HOSTS") or None

    SQLALCHEMY_DATABASE_URI = database_url(os.environ.get("DATABASE_URL"))
    # hide_parameters: database errors (and so logs) never carry the values being written.
    SQLALCHEMY_ENGINE_OPTIONS = {"hide_parameters": True}
    # A database server's connection that sat unused in the pool this long is checked (one
    # round trip) before a request gets it; one returned more recently was working just now
    # (portal/database.py). 0 checks at every checkout.
    DATABASE_PING_AFTER_IDLE_SECONDS = float(os.environ.get("DATABASE_PING_AFTER_IDLE_SECONDS") or 1.0)

    # argon2id; defaults are the OWASP minimum (19 MiB, 2 iterations, 1 lane).
    ARGON2_TIME_COST = _int("ARGON2_TIME_COST", 2)
    ARGON2_MEMORY_COST = _int("ARGON2_MEMORY_COST", 19456)
    ARGON2_PARALLELISM = _int("ARGON2_PARALLELISM", 1)
    PASSWORD_MIN_LENGTH = 12
    PASSWORD_MAX_LENGTH = 256

    # Server-side sessions: database by default, Redis when SESSION_REDIS_URL is set.
    SESSION_REDIS_URL = os.environ.get("SESSION_REDIS_URL")
    # Seconds a request waits for the session Redis (to connect, and for each reply; never
    # retried): past that it gets the 503 "briefly unavailable" page instead of hanging.
    SESSION_REDIS_TIMEOUT = float(os.environ.get("SESSION_REDIS_TIMEOUT_SECONDS") or 0.5)
    SESSION_KEY_PREFIX = os.environ.get("SESSION_KEY_PREFIX", "portal:session:")
    SESSION_PERMANENT = False
    SESSION_USE_SIGNER = False
    SESSION_COOKIE_NAME = "portal_session"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", False)
    PERMANENT_SESSION_LIFETIME = timedelta(hours=12)
    # A session is written only when it changes. Its record lives 12 hours from the last write,
    # never less than the absolute timeout from Log In (which writes it); the idle clock is in
    # the session itself and is written at most once a minute.
    SESSION_REFRESH_EACH_REQUEST = False

    # Request bodies larger than this get the 413 page before they are read: every form is a
    # few fields. deploy/nginx.conf's client_max_body_size says the same in front of gunicorn.
    MAX_CONTENT_LENGTH = _int("MAX_CONTENT_LENGTH", 64 * 1024)

    WTF_CSRF_ENABLED = True
    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the server-side session

    INVITATION_MAX_AGE = timedelta(hours=48)
    PASSWORD_RESET_MAX_AGE = timedelta(hours=1)

    # Email: "outbox" stores messages in the database (development, tests); "smtp" sends.
    MAIL_TRANSPORT = os.environ.get("MAIL_TRANSPORT", "smtp")
    MAIL_SERVER = os.environ.get("MAIL_SERVER", "localhost")
    MAIL_PORT = _int("MAIL_PORT", 25)
    MAIL_USE_TLS = _bool("MAIL_USE_TLS", False)
    MAIL_USE_SSL = _bool("MAIL_USE_SSL", False)
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME")
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD")
    MAIL_DEFAULT_SENDER = os.environ.get("MAIL_DEFAULT_SENDER", "Practice Portal <no-reply@portal.test>")
    MAIL_TIMEOUT_SECONDS = _int("MAIL_TIMEOUT_SECONDS", 10)

    DEV_OUTBOX = _bool("DEV_OUTBOX", False)
    REQUIRE_HTTPS = False

    # Multi-factor authentication
    MFA_ISSUER = os.environ.get("MFA_ISSUER", os.environ.get("PORTAL_NAME", "Practice Portal"))
    # Fernet keys, comma separated, newest first: TOTP secrets are encrypted with the first
    # and can be read with any, so keys rotate without downtime.
    MFA_ENCRYPTION_KEYS = [k.strip() for k in os.environ.get("MFA_ENCRYPTION_KEYS", "").split(",") if k.strip()]
    MFA_CODE_TTL = timedelta(seconds=_int("MFA_CODE_TTL_SECONDS", 300))
    MFA_CODE_MAX_ATTEMPTS = _int("MFA_CODE_MAX_ATTEMPTS", 5)
    MFA_PENDING_LOGIN_TTL = timedelta(seconds=_int("MFA_PENDING_LOGIN_TTL_SECONDS", 600))
    MFA_ENROLLMENT_TTL = timedelta(seconds=_int("MFA_ENROLLMENT_TTL_SECONDS", 600))
    MFA_REAUTH_TTL = timedelta(seconds=_int("MFA_REAUTH_TTL_SECONDS", 600))
    MFA_MAX_FAILED_CODES = min(_int("MFA_MAX_FAILED_CODES", 10), 100)  # NIST: never above 100
    MFA_LOCK_DURATION = timedelta(seconds=_int("MFA_LOCK_SECONDS", 900))
    MFA_RESEND_COOLDOWN = timedelta(seconds=_int("MFA_RESEND_COOLDOWN_SECONDS", 30))
    MFA_CODES_PER_HOUR = _int("MFA_CODES_PER_HOUR", 5)
    MFA_SMS_PER_NUMBER_PER_DAY = _int("MFA_SMS_PER_NUMBER_PER_DAY", 10)
    MFA_SMS_GLOBAL_PER_DAY = _int("MFA_SMS_GLOBAL_PER_DAY", 5000)

    # SMS: "outbox" stores texts in the dev outbox; "twilio" sends through Twilio.
    SMS_TRANSPORT = os.environ.get("SMS_TRANSPORT", "twilio")
    TWILIO_ACCOUNT_SID = os.environ.get("TWILIO_ACCOUNT_SID")
    TWILIO_AUTH_TOKEN = os.environ.get("TWILIO_AUTH_TOKEN")
    TWILIO_FROM_NUMBER = os.environ.get("TWILIO_FROM_NUMBER")
    TWILIO_API_BASE_URL = os.environ.get("TWILIO_API_BASE_URL")  # unset: Twilio's own API
    SMS_TIMEOUT_SECONDS = _int("SMS_TIMEOUT_SECONDS", 5)

    # Symantec VIP Access (portal/vip): the VIP User Services API, SOAP over HTTPS with the
    # account's client certificate (PEM files: certificate and its key). Unset VIP_API_BASE_URL:
    # VIP Access is not offered. VIP_CA_BUNDLE: the CAs to trust for VIP (unset: the system's).
    # VIP users are named VIP_USER_ID_PREFIX + the portal's user id (nothing personal).
    VIP_API_BASE_URL = os.environ.get("VIP_API_BASE_URL")  # https://userservices-auth.vip.symantec.com/vipuserservices
    VIP_CLIENT_CERT = os.environ.get("VIP_CLIENT_CERT")
    VIP_CLIENT_KEY = os.environ.get("VIP_CLIENT_KEY")
    VIP_CA_BUNDLE = os.environ.get("VIP_CA_BUNDLE")
    VIP_TIMEOUT_SECONDS = float(os.environ.get("VIP_TIMEOUT_SECONDS") or 5)
    VIP_USER_ID_PREFIX = os.environ.get("VIP_USER_ID_PREFIX", "portal-")

    # Password attempts: consecutive failures per account before a lock, and its length.
    PASSWORD_MAX_FAILURES = min(_int("PASSWORD_MAX_FAILURES", 10), 100)
    PASSWORD_LOCK_DURATION = timedelta(seconds=_int("PASSWORD_LOCK_SECONDS", 900))

    # Flask-Limiter: in memory per instance by default; a redis:// URI shares limits across
    # instances. If Redis fails, limits fall back to memory and the database counters
    # (account locks for passwords and codes) keep working regardless.
    RATELIMIT_ENABLED = _bool("RATELIMIT_ENABLED", True)
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "memory://")
    RATELIMIT_STORAGE_OPTIONS = redis_fail_fast(float(os.environ.get("RATELIMIT_REDIS_TIMEOUT_SECONDS") or 0.5))
    RATELIMIT_KEY_PREFIX = os.environ.get("RATELIMIT_KEY_PREFIX", "portal-limits")
    RATELIMIT_HEADERS_ENABLED = True
    RATELIMIT_SWALLOW_ERRORS = True
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    LIMIT_LOGIN_PER_ADDRESS = os.environ.get("LIMIT_LOGIN_PER_ADDRESS", "30 per minute;300 per hour")
    LIMIT_LOGIN_PER_ACCOUNT = os.environ.get("LIMIT_LOGIN_PER_ACCOUNT", "10 per minute;60 per hour")
    LIMIT_CODE_PER_ADDRESS = os.environ.get("LIMIT_CODE_PER_ADDRESS", "30 per minute;300 per hour")
    LIMIT_REAUTH_PER_ADDRESS = os.environ.get("LIMIT_REAUTH_PER_ADDRESS", "30 per minute;300 per hour")
    LIMIT_RESET_PER_ADDRESS = os.environ.get("LIMIT_RESET_PER_ADDRESS", "5 per minute;30 per hour")
    LIMIT_RESET_PER_ACCOUNT = os.environ.get("LIMIT_RESET_PER_ACCOUNT", "3 per hour")
    LIMIT_LINK_PER_ADDRESS = os.environ.get("LIMIT_LINK_PER_ADDRESS", "20 per minute")
    # A practice admin resending invitations (each one an email to any address they type).
    LIMIT_INVITATION_RESEND_PER_USER = os.environ.get("LIMIT_INVITATION_RESEND_PER_USER", "20 per hour")

    # How people reach support: shown wherever the portal says "contact support", emails included.
    SUPPORT_CONTACT_EMAIL = os.environ.get("SUPPORT_CONTACT_EMAIL", "support@portal.test")
    SUPPORT_CONTACT_PHONE = os.environ.get("SUPPORT_CONTACT_PHONE", "")
    SUPPORT_HOURS = os.environ.get("SUPPORT_HOURS", "")
    LIMIT_LOST_ACCESS_PER_ADDRESS = os.environ.get("LIMIT_LOST_ACCESS_PER_ADDRESS", "5 per hour")

    # A practice's MFA requirement can start up to this far ahead (a grace period to enroll).
    MFA_REQUIREMENT_MAX_GRACE = timedelta(days=_int("MFA_REQUIREMENT_MAX_GRACE_DAYS", 30))

    # The audit trail (portal/audit): MAC keys, comma separated id:base64key pairs, newest first
    # (rows are sealed with the first, each row names its key); how often the sealer runs; how
    # long a row may wait unsealed before `flask audit verify` fails; checkpoints: how often, and
    # the append-only file they go to (besides the log line).
    AUDIT_KEYS = [k.strip() for k in os.environ.get("AUDIT_KEYS", "").split(",") if k.strip()]
    AUDIT_SEAL_SECONDS = _int("AUDIT_SEAL_SECONDS", 10)
    AUDIT_UNSEALED_MAX_SECONDS = _int("AUDIT_UNSEALED_MAX_SECONDS", 300)
    AUDIT_CHECKPOINT_SECONDS = _int("AUDIT_CHECKPOINT_SECONDS", 300)
    AUDIT_CHECKPOINT_PATH = os.environ.get("AUDIT_CHECKPOINT_PATH", str(INSTANCE_DIR / "audit-checkpoints.jsonl"))

    # The task queue (Huey): SQLite beside the database unless QUEUE_REDIS_URL is set.
    QUEUE_REDIS_URL = os.environ.get("QUEUE_REDIS_URL")
    QUEUE_SQLITE_PATH = os.environ.get("QUEUE_SQLITE_PATH", str(INSTANCE_DIR / "queue.db"))
    QUEUE_SOCKET_TIMEOUT = float(os.environ.get("QUEUE_SOCKET_TIMEOUT_SECONDS", "2"))
    QUEUE_RETRIES = _int("QUEUE_RETRIES", 6)
    QUEUE_RETRY_DELAY_SECONDS = float(os.environ.get("QUEUE_RETRY_DELAY_SECONDS", "10"))  # doubles each retry
    QUEUE_BATCH_SIZE = _int("QUEUE_BATCH_SIZE", 500)  # users per batch of a practice-wide notice

    # House-keeping (portal/housekeeping.py): how long used or expired codes, spent invitation
    # and reset links, and dev outbox messages are kept, and how many rows one statement removes.
    # Codes are kept at least 1 day + MFA_CODE_TTL whatever is set here: the send limits count
    # the last day's codes (SMS per number, all texts), and a code that old has expired.
    HOUSEKEEPING_CODE_RETENTION = timedelta(days=_int("HOUSEKEEPING_CODE_RETENTION_DAYS", 30))
    HOUSEKEEPING_TOKEN_RETENTION = timedelta(days=_int("HOUSEKEEPING_TOKEN_RETENTION_DAYS", 7))
    HOUSEKEEPING_OUTBOX_RETENTION = timedelta(days=_int("HOUSEKEEPING_OUTBOX_RETENTION_DAYS", 7))
    HOUSEKEEPING_BATCH_SIZE = _int("HOUSEKEEPING_BATCH_SIZE", 1000)

    # /metrics (Prometheus) answers only to these networks (CIDR, comma separated); others get 404.
    METRICS_ALLOWED_NETWORKS = [
        n.strip() for n in os.environ.get("METRICS_ALLOWED_NETWORKS", "127.0.0.1/32,::1/128").split(",") if n.strip()
    ]
    # Logs: "text" (one readable line) or "json" (one JSON object per line; production's default).
    LOG_FORMAT = os.environ.get("LOG_FORMAT", "text")

    # Sessions end after this long without a request, and this long after Log In at most.
    SESSION_IDLE_TIMEOUT = timedelta(seconds=_int("SESSION_IDLE_SECONDS", 1800))
    SESSION_ABSOLUTE_TIMEOUT = timedelta(seconds=_int("SESSION_ABSOLUTE_SECONDS", 43200))

    # Support area: confirmation lifetime, optional network allow-list (CIDR, comma separated)
    # and how many proxies in front of the portal may set X-Forwarded-For/-Proto.
    SUPPORT_CONFIRM_TTL = timedelta(seconds=_int("SUPPORT_CONFIRM_SECONDS", 900))
    SUPPORT_ALLOWED_NETWORKS = [
        n.strip() for n in os.environ.get("SUPPORT_ALLOWED_NETWORKS", "").split(",") if n.strip()
    ]
    TRUSTED_PROXY_COUNT = _int("TRUSTED_PROXY_COUNT", 0)

    # Accept addresses under the reserved .test domain (demo data); never in production.
    EMAIL_ALLOW_TEST_DOMAIN = _bool("EMAIL_ALLOW_TEST_DOMAIN", False)


class DevelopmentConfig(Config):
    ENV_NAME = "development"
    SECRET_KEY = os.environ.get("SECRET_KEY", DEV_SECRET_KEY)
    MAIL_TRANSPORT = os.environ.get("MAIL_TRANSPORT", "outbox")
    DEV_OUTBOX = _bool("DEV_OUTBOX", True)
    EMAIL_ALLOW_TEST_DOMAIN = True
    SMS_TRANSPORT = os.environ.get("SMS_TRANSPORT", "outbox")
    # A fixed development key (refused in production) keeps enrolled apps working across restarts.
    MFA_ENCRYPTION_KEYS = Config.MFA_ENCRYPTION_KEYS or [DEV_MFA_KEY]
    AUDIT_KEYS = Config.AUDIT_KEYS or [DEV_AUDIT_KEY]
    # VIP Access through the stand-in inside the portal (portal/dev, DEV_OUTBOX): the dev outbox
    # page shows the demo credentials' codes.
    VIP_API_BASE_URL = os.environ.get("VIP_API_BASE_URL", Config.PUBLIC_BASE_URL.rstrip("/") + "/dev/vip")
    VIP_DEV_STATE_PATH = os.environ.get("VIP_DEV_STATE_PATH", str(INSTANCE_DIR / "dev-vip.json"))


class TestingConfig(Config):
    ENV_NAME = "testing"
    TESTING = True
    SECRET_KEY = "testing-secret-key"
    SQLALCHEMY_DATABASE_URI = database_url(os.environ.get("TEST_DATABASE_URL") or "sqlite://")
    # The cheap hash is allowed here only; ProductionConfig.validate refuses it.
    ARGON2_TIME_COST = 1
    ARGON2_MEMORY_COST = 8
    ARGON2_PARALLELISM = 1
    WTF_CSRF_ENABLED = False
    # Off here so tests of other behaviour are not throttled; the limits module turns it on.
    RATELIMIT_ENABLED = False
    RATELIMIT_STORAGE_URI = os.environ.get("TEST_RATELIMIT_STORAGE_URI", "memory://")
    MAIL_TRANSPORT = "outbox"
    SMS_TRANSPORT = "outbox"
    MFA_ENCRYPTION_KEYS = ["x5ZyTRWSmfXv0WbOTSRbX8mTL1ZCwSs2pMaUzRX9Yy8="]
    AUDIT_KEYS = [TEST_AUDIT_KEY]
    # Tests that write checkpoints pass their own file; this keeps any other out of instance/.
    AUDIT_CHECKPOINT_PATH = os.path.join(os.environ.get("TMPDIR", "/tmp"), "portal-test-audit-checkpoints.jsonl")
    DEV_OUTBOX = True
    EMAIL_ALLOW_TEST_DOMAIN = True
    PUBLIC_BASE_URL = "http://portal.test"
    SESSION_REDIS_URL = os.environ.get("TEST_SESSION_REDIS_URL")
    TRUSTED_HOSTS = None  # the test client's "localhost"; tests of the host check set their own
    QUEUE_REDIS_URL = os.environ.get("TEST_QUEUE_REDIS_URL")
    QUEUE_RETRY_DELAY_SECONDS = 0.2


class ProductionConfig(Config):
    ENV_NAME = "production"
    # Plain HTTP that reaches the app (behind a proxy: X-Forwarded-Proto via TRUSTED_PROXY_COUNT)
    # is redirected to HTTPS; health checks are exempt for the load balancer.
    REQUIRE_HTTPS = _bool("REQUIRE_HTTPS", True)
    SESSION_COOKIE_SECURE = True
    SESSION_COOKIE_NAME = "__Host-portal_session"
    LOG_FORMAT = os.environ.get("LOG_FORMAT", "json")
    # Only the portal's own names: TRUSTED_HOSTS, or else the host of PUBLIC_BASE_URL.
    TRUSTED_HOSTS = Config.TRUSTED_HOSTS or [urlsplit(Config.PUBLIC_BASE_URL).hostname or ""]

    @classmethod
    def validate(cls, settings) -> None:
        """Refuse to start on settings that would be unsafe in production."""
        problems = []
        key = settings.get("SECRET_KEY")
        if not key or key in {DEV_SECRET_KEY, TestingConfig.SECRET_KEY} or len(key) < 32:
            problems.append("SECRET_KEY must be set to a random value of at least 32 characters")
        if settings.get("DEBUG") or os.environ.get("FLASK_DEBUG", "").lower() in {"1", "true", "yes", "on"}:
            problems.append("debug mode must be off in production (unset FLASK_DEBUG)")
        if settings.get("DEV_OUTBOX"):
            problems.append("DEV_OUTBOX must be off in production")
        if not settings.get("TRUSTED_HOSTS") or not all(settings["TRUSTED_HOSTS"]):
            problems.append("TRUSTED_HOSTS must name the portal's host names (default: the host of PUBLIC_BASE_URL)")
        if settings.get("EMAIL_ALLOW_TEST_DOMAIN"):
            problems.append("EMAIL_ALLOW_TEST_DOMAIN must be off in production")
        keys = settings.get("MFA_ENCRYPTION_KEYS") or []
        if not keys or DEV_MFA_KEY in keys or TestingConfig.MFA_ENCRYPTION_KEYS[0] in keys:
            problems.append("MFA_ENCRYPTION_KEYS must hold at least one Fernet key of your own")
        audit_keys = {key.partition(":")[2].strip() for key in settings.get("AUDIT_KEYS") or []}
        if not audit_keys or audit_keys & {DEV_AUDIT_KEY.partition(":")[2], TEST_AUDIT_KEY.partition(":")[2]}:
            problems.append("AUDIT_KEYS must hold at least one audit MAC key of your own (id:base64, 32+ random bytes)")
        if settings.get("SMS_TRANSPORT") != "twilio":
            problems.append("SMS_TRANSPORT must be twilio in production")
        if settings.get("MAIL_TRANSPORT") != "smtp":
            problems.append("MAIL_TRANSPORT must be smtp in production")
        problems += cls.vip_problems(settings)
        memory = settings.get("ARGON2_MEMORY_COST", 0)
        time_cost = settings.get("ARGON2_TIME_COST", 0)
        if not any(memory >= m and time_cost >= t for m, t in OWASP_ARGON2_MINIMUMS):
            problems.append("ARGON2_MEMORY_COST/ARGON2_TIME_COST are below the OWASP minimum")
        if problems:
            raise RuntimeError("Refusing to start: " + "; ".join(problems))


    @staticmethod
    def vip_problems(settings) -> list[str]:
        """VIP Access is offered only over HTTPS with the account's client certificate and key."""
        if not settings.get("VIP_API_BASE_URL"):
            return []
        problems = []
        if not settings["VIP_API_BASE_URL"].startswith("https://"):
            problems.append("VIP_API_BASE_URL must be an https:// URL")
        for name in ("VIP_CLIENT_CERT", "VIP_CLIENT_KEY"):
            path = settings.get(name)
            if not path or not os.path.isfile(path) or not os.access(path, os.R_OK):
                problems.append(f"{name} must name the VIP account's readable PEM file when VIP_API_BASE_URL is set")
        if settings.get("VIP_CA_BUNDLE") and not os.path.isfile(settings["VIP_CA_BUNDLE"]):
            problems.append("VIP_CA_BUNDLE must name a file of CA certificates")
        if not settings.get("VIP_TIMEOUT_SECONDS") or settings["VIP_TIMEOUT_SECONDS"] <= 0:
            problems.append("VIP_TIMEOUT_SECONDS must be above 0")
        return problems


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}
