"""The MFA methods, described once: the one place that knows what each method is.

Routes, services and templates ask an entry (`methods.get(key)`) what they need: its label as
the specification words it, whether it sends codes and by which channel, where codes go (in
full and masked), how a code is checked, and the Security tab steps that set it up. Adding a
method is one entry here plus its own step partials under templates/security/steps/.

Symantec VIP Access is an entry of its own that is a path under Authenticator Apps (`under`):
it is stored as the user's one Authenticator Apps method (`stored_key`), holding a Credential ID
where a QR-code app holds a secret, and `of()` tells the two apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import bindparam, or_

from portal import delivery, vip
from portal.accounts import lockout
from portal.mfa import codes, crypto, totp
from portal.mfa.errors import AccountLocked, InvalidCode, UnknownMethod
from portal.mfa.masking import mask_email
from portal.mfa.phones import mask_phone
from portal.models import MfaEnrollment, User
from portal.vip import codes as vip_codes


@dataclass(frozen=True)
class Method:
    key: str  # stored in mfa_enrollments.method
    label: str  # as the specification words it under "Choose MFA Device:"
    # Security tab steps after the device is chosen; none: it turns on at once.
    steps: tuple[str, ...] = ()
    # The step shown when the device is picked and nothing is stored yet (None: picking it
    # stores a pending method at once, as an authenticator's new secret).
    entry_step: str | None = None
    # The step to return to while a pending method of this kind waits.
    resume_step: str | None = None
    # Support staff must use the strongest method only.
    for_support: bool = False
    # Codes go to the login email, so it must be verified first.
    uses_login_email: bool = False
    # What choosing it does, in one line under "Choose MFA Device:".
    summary: str = ""
    # The key of the device it is a path of under "Choose MFA Device:" (None: its own button).
    under: str | None = None
    # What mfa_enrollments.method holds for it (None: its key).
    store_as: str | None = None

    @property
    def stored_key(self) -> str:
        return self.store_as or self.key

    @property
    def device(self) -> Method:
        """The "Choose MFA Device:" button it belongs to (itself, or the one it is a path of)."""
        return _BY_KEY[self.under] if self.under else self

    def available(self) -> bool:
        """Is it offered here? (A method that needs an outside service is not, unconfigured.)"""
        return True

    def offer(self) -> str:
        """The line under its button: `summary`, and the paths under it that are offered."""
        return self.summary

    def prompt(self) -> str | None:
        """What the code page says about where the code comes from, for a method that sends none."""
        return None

    @property
    def channel(self) -> delivery.Channel | None:
        """The channel its codes travel by; None for a method that makes its own codes."""
        return None

    @property
    def sends_codes(self) -> bool:
        return self.channel is not None

    def destination(self, user: User, details) -> str | None:
        """Where codes go, in full (for sending only); None if the method sends nothing."""
        return None

    def masked_destination(self, user: User, details) -> str | None:
        """Where codes go, masked: shown after the password step, in notices and the audit trail."""
        return None

    def described(self, masked_destination: str | None) -> str:
        """The method as a sentence names it, with its masked destination if it has one:
        "SMS to +1 (•••) •••-1234", "Authenticator Apps"."""
        return f"{self.label} to {masked_destination}" if masked_destination else self.label

    def new_pending_details(self) -> dict | None:
        """What picking the device stores as pending at once (None: nothing yet)."""
        return None

    def setup_display(self, user: User, pending) -> dict | None:
        """What the Security tab shows while a pending method of this kind waits (a QR code)."""
        return None

    def check_code(self, user: User, details, raw_code: str, *, purpose: str, challenge: str,
                   now: datetime, on_success: dict | None = None) -> int | None:
        """Accept a code for `details` (the active or pending method) or raise an MfaError.

        Returns the authenticator time step it matched, if any. Failures count against the
        account and are committed; success is not (the caller commits it with its own work).
        `on_success`: columns of the user that a success writes (the caller sets them too; a
        method that writes its success in one statement takes them into it).
        """
        raise NotImplementedError


@dataclass(frozen=True)
class _MessageMethod(Method):
    """A method whose codes the portal generates and sends (SMS, Email)."""

    channel_key: str = ""

    @property
    def channel(self) -> delivery.Channel:
        return delivery.channel(self.channel_key)

    def check_code(self, user, details, raw_code, *, purpose, challenge, now, on_success=None):
        codes.verify(user, purpose=purpose, challenge=challenge, raw_code=raw_code, now=now)
        return None


@dataclass(frozen=True)
class _Sms(_MessageMethod):
    def destination(self, user, details):
        return details.phone_e164

    def masked_destination(self, user, details):
        return mask_phone(details.phone_e164) if details is not None and details.phone_e164 else None


@dataclass(frozen=True)
class _Email(_MessageMethod):
    def destination(self, user, details):
        return user.email

    def masked_destination(self, user, details):
        return mask_email(user.email)


@dataclass(frozen=True)
class _Authenticator(Method):
    """RFC 6238 TOTP from an app; the portal stores the encrypted secret and the last step used."""

    def new_pending_details(self):
        return {"totp_secret": crypto.encrypt(totp.new_secret())}

    def offer(self):
        if VIP_ACCESS.available():
            return "Scan a QR code in an app such as Google Authenticator or Microsoft Authenticator, or use " \
                   "Symantec VIP Access with its Credential ID."
        return self.summary

    def prompt(self):
        issuer = current_app.config["MFA_ISSUER"]
        return f"Open your authenticator app and enter the 6-digit code it shows for {issuer}."

    def setup_display(self, user, pending):
        """The QR code (SVG, drawn here) and the manual key; the secret never leaves our origin."""
        secret = crypto.decrypt(pending.totp_secret)
        uri = totp.provisioning_uri(secret, user.email)
        # The uri opens the app on a phone ("Open in authenticator app"); it carries the secret, as
        # the QR code and the key on the same page do (that page is never cached: no-store).
        return {"qr_svg": totp.qr_svg(uri), "manual_key": totp.grouped(secret), "uri": uri}

    def check_code(self, user, details, raw_code, *, purpose, challenge, now, on_success=None):
        """Compared first, then decided in one conditional UPDATE of the user either way.

        A right code succeeds only while the account has attempts left, no lock runs and its
        time step is later than the last one accepted, and then claims that step
        (`lockout.claim_success`, one UPDATE of the user: a replay, or a parallel request with
        the same code, loses); a wrong one is paid for (`lockout.claim_attempt`). So of any
        number of parallel guesses, a right one gets in only if fewer than the limit of wrong
        ones were counted before it: the outcome of sending them one after another, in one
        statement where paying first and resetting after took three on every Log In. The
        comparison itself reveals nothing: only a claimed success answers "right", and a locked
        account is refused before anything is compared (no timing to tell guesses apart).
        A code being set up (pending, not yet active) claims no step: activation records it.
        """
        code = codes.normalise_code(raw_code)
        until = lockout.locked_until(user, lockout.CODE, now)
        if until is not None:
            raise AccountLocked(until - now)
        secret = crypto.decrypt(details.totp_secret)
        active = isinstance(details, MfaEnrollment)
        last_step = user.totp_last_step if active else None
        step = totp.matching_step(secret, code, now, last_step)
        if step is not None:
            # An active method's step must be unused, and is claimed in the same UPDATE.
            claim = dict(guard=_STEP_UNUSED, guard_params={"step": step},
                         totp_last_step=step) if active else {}
            if lockout.claim_success(user, lockout.CODE, now, **claim, **(on_success or {})):
                return step
        lockout.claim_attempt(user, lockout.CODE, now)
        replay = step is None and totp.matching_step(secret, code, now, None) is not None
        if lockout.attempt_failed(user, lockout.CODE, now):
            raise AccountLocked(lockout.CODE.duration())
        if replay or step is not None:
            raise InvalidCode("That code was already used. Wait for your app to show a new code, then enter it.")
        raise InvalidCode("That code is not correct. Enter the 6-digit code your app shows now.")


# An authenticator code's guard in lockout.claim_success (built once, on the users table): its
# time step is later than the last one accepted.
_STEP_UNUSED = or_(User.__table__.c.totp_last_step.is_(None), User.__table__.c.totp_last_step < bindparam("step"))


@dataclass(frozen=True)
class _VipAccess(Method):
    """Symantec VIP Access: a Credential ID whose codes Symantec's VIP service checks
    (portal/vip); the portal never holds its secret."""

    def available(self):
        return vip.configured()

    def masked_destination(self, user, details):
        credential_id = getattr(details, "vip_credential_id", None) if details is not None else None
        return vip.mask_credential_id(credential_id) if credential_id else None

    def described(self, masked_destination):
        """Codes are not sent anywhere: the credential is named, not a destination."""
        return f"{self.label} (Credential ID {masked_destination})" if masked_destination else self.label

    def prompt(self):
        return "Open Symantec VIP Access and enter the 6-digit security code it shows now."

    def check_code(self, user, details, raw_code, *, purpose, challenge, now, on_success=None):
        return vip_codes.check(user, details, raw_code, now=now)


# The order the Security tab lists them.
AUTHENTICATOR = _Authenticator(
    "totp", "Authenticator Apps", steps=("qr", "code"), resume_step="qr", for_support=True,
    summary="Scan a QR code in an app such as Google Authenticator or Microsoft Authenticator.")
SMS = _Sms("sms", "SMS", steps=("phone", "code"), entry_step="phone", resume_step="code", channel_key="sms",
           summary="We text a code to a US number you verify.")
EMAIL = _Email("email", "Email", uses_login_email=True, channel_key="email",
               summary="Turns on at once; codes go to your login email.")
# A path under Authenticator Apps, not a button of its own; stored as Authenticator Apps.
VIP_ACCESS = _VipAccess(
    "vip", "Symantec VIP Access", steps=("credential",), entry_step="credential", for_support=True,
    under=AUTHENTICATOR.key, store_as=AUTHENTICATOR.key,
    summary="Enter the Credential ID and two security codes from the VIP Access app.")
# The "Choose MFA Device:" buttons, in the order the Security tab lists them.
ALL: tuple[Method, ...] = (AUTHENTICATOR, SMS, EMAIL)
REGISTERED: tuple[Method, ...] = (*ALL, VIP_ACCESS)
_BY_KEY = {method.key: method for method in REGISTERED}


def get(key: str) -> Method:
    """The method stored under `key`. Raises UnknownMethod."""
    try:
        return _BY_KEY[key]
    except (KeyError, TypeError):
        raise UnknownMethod(f"Choose {SMS.label}, {AUTHENTICATOR.label} or {EMAIL.label}.") from None


def find(key: str | None) -> Method | None:
    """The method named by a request parameter, or None for anything else."""
    return _BY_KEY.get(key) if isinstance(key, str) else None


def of(details) -> Method | None:
    """The method of an active or pending row (None for None)."""
    if details is None:
        return None
    if getattr(details, "vip_credential_id", None):
        return VIP_ACCESS
    return _BY_KEY[details.method]


def label(key: str | None, default: str = "None") -> str:
    """The label for a stored key; `default` for no method."""
    method = find(key)
    return method.label if method else default


@dataclass(frozen=True)
class Step:
    """One step of setting up a method on the Security tab (`sms_code` in URLs)."""

    method: Method
    name: str

    @property
    def id(self) -> str:
        return f"{self.method.key}_{self.name}"

    @property
    def template(self) -> str:
        return f"security/steps/{self.id}.html"

    @property
    def needs_pending(self) -> bool:
        return self.name != self.method.entry_step

    @classmethod
    def parse(cls, value: str | None) -> Step | None:
        """The step a request parameter names, or None."""
        if not isinstance(value, str):
            return None
        key, _, name = value.partition("_")
        method = find(key)
        return cls(method, name) if method is not None and name in method.steps else None
