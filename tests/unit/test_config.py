"""Configuration: production refuses unsafe settings."""

import pytest

from config import DEV_AUDIT_KEY, DEV_MFA_KEY, DEV_SECRET_KEY, TEST_AUDIT_KEY, ProductionConfig, database_url
from portal import create_app

GOOD = {
    "SECRET_KEY": "x" * 48,
    "DEV_OUTBOX": False,
    "MAIL_TRANSPORT": "smtp",
    "ARGON2_MEMORY_COST": 19456,
    "ARGON2_TIME_COST": 2,
    "SQLALCHEMY_DATABASE_URI": "sqlite://",
    "EMAIL_ALLOW_TEST_DOMAIN": False,
    "SMS_TRANSPORT": "twilio",
    "MFA_ENCRYPTION_KEYS": ["Rz8b1T0mVhQXc1l3Zr0t3d9pJ0cS4yY0r7b2n5m8k1Q="],
    "AUDIT_KEYS": ["k1:yRv0l3b8cGZ2dXJ0c2VjcmV0LWF1ZGl0LWtleS0zMmJ5dGVzIQ=="],
}


def production(**overrides):
    class Config(ProductionConfig):
        pass

    for key, value in {**GOOD, **overrides}.items():
        setattr(Config, key, value)
    return create_app(Config)


def test_production_starts_with_safe_settings():
    app = production()
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_NAME"].startswith("__Host-")
    assert "dev" not in app.blueprints


@pytest.mark.parametrize("overrides, complaint", [
    ({"SECRET_KEY": None}, "SECRET_KEY"),
    ({"SECRET_KEY": ""}, "SECRET_KEY"),
    ({"SECRET_KEY": DEV_SECRET_KEY}, "SECRET_KEY"),
    ({"SECRET_KEY": "short"}, "SECRET_KEY"),
    ({"DEV_OUTBOX": True}, "DEV_OUTBOX"),
    ({"MAIL_TRANSPORT": "outbox"}, "MAIL_TRANSPORT"),
    ({"ARGON2_MEMORY_COST": 8, "ARGON2_TIME_COST": 1}, "OWASP"),
    ({"ARGON2_MEMORY_COST": 19456, "ARGON2_TIME_COST": 1}, "OWASP"),
    ({"EMAIL_ALLOW_TEST_DOMAIN": True}, "EMAIL_ALLOW_TEST_DOMAIN"),
    ({"MFA_ENCRYPTION_KEYS": []}, "MFA_ENCRYPTION_KEYS"),
    ({"MFA_ENCRYPTION_KEYS": [DEV_MFA_KEY]}, "MFA_ENCRYPTION_KEYS"),
    ({"AUDIT_KEYS": []}, "AUDIT_KEYS"),
    ({"AUDIT_KEYS": [DEV_AUDIT_KEY]}, "AUDIT_KEYS"),
    ({"AUDIT_KEYS": [TEST_AUDIT_KEY]}, "AUDIT_KEYS"),
    ({"AUDIT_KEYS": ["k1:c2hvcnQ="]}, "AUDIT_KEYS"),
    ({"SMS_TRANSPORT": "outbox"}, "SMS_TRANSPORT"),
    ({"TRUSTED_HOSTS": []}, "TRUSTED_HOSTS"),
    ({"TRUSTED_HOSTS": [""]}, "TRUSTED_HOSTS"),
])
def test_production_refuses_unsafe_settings(overrides, complaint):
    """Does production refuse to start on a default key, the outbox or a cheap hash?"""
    with pytest.raises(RuntimeError, match=complaint):
        production(**overrides)


def test_production_is_the_default(monkeypatch):
    """With no PORTAL_CONFIG, is the strict production config chosen?"""
    monkeypatch.delenv("PORTAL_CONFIG", raising=False)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app()


def test_unknown_config_name_is_refused(monkeypatch):
    monkeypatch.setenv("PORTAL_CONFIG", "staging")
    with pytest.raises(RuntimeError, match="PORTAL_CONFIG"):
        create_app()


@pytest.mark.parametrize("raw, expected", [
    ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
    ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
    ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
])
def test_database_url_uses_psycopg3(raw, expected):
    assert database_url(raw) == expected


def test_sqlite_in_instance_is_the_default():
    assert database_url(None).startswith("sqlite:///") and database_url(None).endswith("instance/portal.db")


def test_production_refuses_debug_mode(monkeypatch):
    """Can FLASK_DEBUG switch on the debugger (and stack traces) in production?"""
    monkeypatch.setenv("FLASK_DEBUG", "1")
    with pytest.raises(RuntimeError, match="debug mode"):
        production()


def test_code_failure_limit_never_exceeds_one_hundred(monkeypatch):
    """NIST SP 800-63B: never more than 100 consecutive failures without a lock."""
    import importlib

    import config

    monkeypatch.setenv("MFA_MAX_FAILED_CODES", "1000")
    monkeypatch.setenv("PASSWORD_MAX_FAILURES", "500")
    reloaded = importlib.reload(config)
    try:
        assert reloaded.Config.MFA_MAX_FAILED_CODES == 100
        assert reloaded.Config.PASSWORD_MAX_FAILURES == 100
    finally:
        monkeypatch.delenv("MFA_MAX_FAILED_CODES")
        monkeypatch.delenv("PASSWORD_MAX_FAILURES")
        importlib.reload(config)


@pytest.mark.parametrize("setting", ["MAIL_TRANSPORT", "SMS_TRANSPORT"])
def test_an_unknown_transport_stops_the_start(setting):
    """Is a misspelt transport refused when the portal starts, not at the first send?"""
    from config import TestingConfig
    from portal import create_app

    class Misspelt(TestingConfig):
        pass

    setattr(Misspelt, setting, "carrier-pigeon")
    with pytest.raises(RuntimeError, match=setting):
        create_app(Misspelt)
