"""Database models, one module per aggregate."""

from portal.models.outbox import OutboxMessage
from portal.models.practice import Practice
from portal.models.session import ServerSession
from portal.models.tokens import Invitation, PasswordReset
from portal.models.user import ROLES, User

__all__ = ["ROLES", "Invitation", "OutboxMessage", "PasswordReset", "Practice", "ServerSession", "User"]
