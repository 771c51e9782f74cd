"""Removing a credential's binding at VIP, on the task queue (retried with back-off).

Queued after the change that makes the binding unwanted is committed: the user switched away,
support cleared MFA, or a set-up failed after VIP may have bound the credential (VIP did not
answer in time, or saving here failed). The task removes the binding unless, by the time it
runs, the credential is the user's active method again (it was set up anew meanwhile).
"""

from __future__ import annotations

from sqlalchemy import select

from portal import vip
from portal.extensions import db
from portal.models import MfaEnrollment
from portal.tasks import enqueue, task


@task
def release_vip_credential(user_id: int, credential_id: str) -> bool:
    """Unbind `credential_id` from the user's VIP user. Returns False if it is in use again.
    Raises ServiceError (the queue retries)."""
    active = db.session.scalar(select(MfaEnrollment.vip_credential_id).where(MfaEnrollment.user_id == user_id))
    db.session.rollback()  # nothing held open while VIP answers
    if active == credential_id:
        return False
    vip.service().remove_credential(vip.vip_user_id(user_id), credential_id)
    return True


def release_later(user_id: int, credential_id: str) -> None:
    """Queue the removal (after the caller's commit)."""
    enqueue(release_vip_credential, user_id, credential_id)
