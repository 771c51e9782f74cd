"""What Account Settings | Security shows: one state object, built from the user's method, the
method being set up and what the session has proven. Templates read it; they decide nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from portal import auth_state
from portal.mfa import codes, enrollment, methods, policy
from portal.mfa.login import seconds_until
from portal.models import MfaPendingEnrollment, User


@dataclass
class SecurityTab:
    user: User
    now: datetime
    fresh: bool  # the password was re-entered recently: MFA settings are open
    seconds_left: int  # how long that lasts
    step: methods.Step | None = None  # the set-up step being shown, if any
    pending: MfaPendingEnrollment | None = None
    challenge: str | None = None  # binds set-up codes to this session

    @property
    def must_enroll(self) -> bool:
        return policy.must_enroll(self.user)

    @property
    def required(self) -> bool:
        return policy.is_required(self.user)

    @property
    def is_support(self) -> bool:
        return self.user.role == "support"

    @property
    def email_verified(self) -> bool:
        return self.user.email_verified_at is not None

    @property
    def enrollment(self):
        return self.user.mfa

    @property
    def current(self) -> methods.Method | None:
        return methods.of(self.user.mfa)

    @property
    def destination(self) -> str | None:
        current = self.current
        return current.masked_destination(self.user, self.user.mfa) if current else None

    @property
    def choices(self) -> tuple[methods.Method, ...]:
        return policy.allowed_methods(self.user)

    @property
    def vip_offered(self) -> bool:
        """Is "Use Symantec VIP Access" a path under Authenticator Apps for this user here?"""
        return methods.VIP_ACCESS.available() and methods.VIP_ACCESS.device in self.choices

    @property
    def vip_path(self) -> methods.Method:
        return methods.VIP_ACCESS

    @property
    def on_vip_path(self) -> bool:
        return self.step is not None and self.step.method is methods.VIP_ACCESS

    @property
    def pending_destination(self) -> str | None:
        return self.step.method.masked_destination(self.user, self.pending) if self.step and self.pending else None

    @cached_property
    def setup(self) -> dict | None:
        """The pending method's set-up display (QR code and key), computed only if shown."""
        return self.step.method.setup_display(self.user, self.pending) if self.step and self.pending else None

    @cached_property
    def resend_wait(self) -> int:
        """Seconds until "click here" works again on a step that sends codes."""
        if self.step is None or self.pending is None or not self.step.method.sends_codes:
            return 0
        method = self.step.method
        available_at = codes.resend_available_at(self.user, method.channel.key,
                                                 method.destination(self.user, self.pending), self.now,
                                                 purpose="enroll", challenge=self.challenge)
        return seconds_until(available_at, self.now)

    @property
    def reauth_minutes(self) -> int:
        return max(1, self.seconds_left // 60)


def build(user: User, now: datetime, *, device: methods.Method | None = None, step: methods.Step | None = None,
          challenge: str | None = None) -> SecurityTab:
    """The tab as `user` should see it now.

    `device` is a device just picked under "Choose MFA Device:" and `step` a step asked for
    (both from the request, already parsed); without them the tab resumes a method being set
    up. A step that needs a pending method which does not exist (expired, or never started)
    is not shown.
    """
    fresh = auth_state.proven_within(auth_state.PASSWORD, now)
    tab = SecurityTab(user, now, fresh, auth_state.seconds_left(auth_state.PASSWORD, now), challenge=challenge)
    if not fresh:
        return tab
    pending = enrollment.pending_for(user, now)
    waiting = methods.of(pending)
    if step is None:
        if device is not None and device.entry_step:
            step = methods.Step(device, device.entry_step)
        elif waiting is not None and device in (None, waiting):
            step = methods.Step(waiting, waiting.resume_step)
    if step is not None and step.needs_pending and step.method is not waiting:
        step = None
    if step is not None and (not step.method.available() or step.method.device not in policy.allowed_methods(user)):
        step = None  # a path not offered here (VIP Access unconfigured) or not for this user
    tab.step, tab.pending = step, pending
    return tab
