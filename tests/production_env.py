"""The settings a production process started by a test needs (gunicorn, nginx in front of it)."""

from __future__ import annotations


def production_settings(database_uri: str) -> dict[str, str]:
    """Production config with throwaway keys of its own (never the development or testing ones)."""
    return {
        "PORTAL_CONFIG": "production",
        "SECRET_KEY": "k" * 40,
        "DATABASE_URL": database_uri,
        "MAIL_TRANSPORT": "smtp",
        "SMS_TRANSPORT": "twilio",
        "MFA_ENCRYPTION_KEYS": "Rz8b1T0mVhQXc1l3Zr0t3d9pJ0cS4yY0r7b2n5m8k1Q=",
        "AUDIT_KEYS": "k1:yRv0l3b8cGZ2dXJ0c2VjcmV0LWF1ZGl0LWtleS0zMmJ5dGVzIQ==",
    }
