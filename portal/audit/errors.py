"""Errors of the audit trail."""


class AuditKeyError(RuntimeError):
    """AUDIT_KEYS is missing or malformed: the portal refuses to start (never shown to users)."""

    status = 500
