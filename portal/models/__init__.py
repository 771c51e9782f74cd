"""Database models, one module per aggregate."""

from portal.models.audit import AuditChainLock, AuditEvent
from portal.models.mfa import MfaCode, MfaEnrollment, MfaPendingEnrollment
from portal.models.outbox import OutboxMessage
from portal.models.practice import Practice, PracticeMfaCount
from portal.models.queue import DeferredTask, FailedTask, SentNotice
from portal.models.requests import LostAccessRequest, RequirementRequest
from portal.models.session import ServerSession
from portal.models.tokens import Invitation, PasswordReset
from portal.models.user import ROLES, User

__all__ = [
    "ROLES", "AuditChainLock", "AuditEvent", "DeferredTask", "FailedTask", "Invitation", "LostAccessRequest",
    "MfaCode", "MfaEnrollment", "MfaPendingEnrollment", "OutboxMessage", "PasswordReset", "Practice",
    "PracticeMfaCount", "RequirementRequest", "SentNotice", "ServerSession", "User",
]
