"""Words for the audit trail: a label for every event type and its detail as a sentence.

Pages never show an event's code or its stored JSON. `label()` names the event the way a
person would ("Code sent by text", "Logged in", "MFA cleared by support"), choosing the words
from the outcome or the detail where they matter; `sentence()` turns the detail into plain
parts joined by " · " ("Reason: lost phone · Ticket: SUP-1042"). Method keys are named by the
registry (`portal.mfa.methods`), channels by `portal.delivery`; destinations are shown as they
were stored (masked by the caller of `record()`); ids are never shown.

A new event type needs an entry in LABELS (tests/unit/test_audit_labels.py fails without
one), and a new detail key an entry in KEYS (the same test reads the keys every `record()`
call writes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from portal import delivery
from portal.mfa import methods
from portal.models.user import ROLE_LABELS
from portal.wording import minutes_in_words

SEPARATOR = " · "

# -- labels ------------------------------------------------------------------------------------

# The plain name of each event type: the filter's choices, and the label when nothing in the
# detail or outcome changes it.
LABELS: dict[str, str] = {
    "login.password_succeeded": "Password accepted",
    "login.password_failed": "Password refused",
    "login.succeeded": "Logged in",
    "login.locked": "Locked after wrong passwords",
    "logout": "Logged out",
    "logout.everywhere": "Logged out everywhere",
    "session.expired": "Session ended",
    "reauth.failed": "Password re-entry refused",
    "reauth.succeeded": "Password re-entered",
    "mfa.code_sent": "Code sent",
    "mfa.code_send_failed": "Code could not be sent",
    "mfa.code_resent": "Code sent again",
    "mfa.code_verified": "Code accepted",
    "mfa.code_failed": "Code refused",
    "mfa.locked": "Locked after wrong codes",
    "mfa.enrolled": "MFA turned on",
    "mfa.switched": "MFA method changed",
    "mfa.cleared": "MFA cleared by support",
    "mfa.lost_access_requested": "Asked support to clear MFA",
    "mfa.lost_access_decided": "Request to clear MFA answered",
    "practice.requirement_changed": "Practice MFA requirement changed",
    "practice.request_made": "Requirement change requested",
    "practice.request_decided": "Requirement change request answered",
    "invitation.sent": "Invitation sent",
    "invitation.accepted": "Invitation accepted",
    "invitation.resent": "Invitation sent again",
    "invitation.revoked": "Invitation withdrawn",
    "password_reset.requested": "Password reset requested",
    "password_reset.completed": "Password changed with a reset link",
    "support.confirmed": "Support access confirmed",
    "support.unlocked": "Lock ended by support",
}

# Events whose name already says they failed: no "(failed)" is added for their outcome.
_FAILURES_BY_NAME = frozenset({
    "login.password_failed", "login.locked", "reauth.failed", "mfa.code_send_failed", "mfa.code_failed",
    "mfa.locked",
})


def _by_channel(words: str) -> Callable[[dict], str | None]:
    def choose(detail: dict) -> str | None:
        channel = delivery.CHANNELS.get(detail.get("channel"))
        return f"{words} by {channel.verb}" if channel else None
    return choose


def _yes_no(yes: str, no: str, key: str) -> Callable[[dict], str | None]:
    def choose(detail: dict) -> str | None:
        value = detail.get(key)
        return None if value is None else (yes if value else no)
    return choose


def _lost_access_answer(detail: dict) -> str | None:
    return {"cleared": "Request to clear MFA approved", "declined": "Request to clear MFA declined"}.get(
        detail.get("outcome"))


def _password_refused(detail: dict) -> str | None:
    return "Log In with an unknown email" if detail.get("reason") == "unknown email" else None


# Labels that depend on the detail (None: fall back to LABELS).
_VARIANTS: dict[str, Callable[[dict], str | None]] = {
    "mfa.code_sent": _by_channel("Code sent"),
    "mfa.code_resent": _by_channel("Code sent again"),
    "mfa.code_send_failed": _by_channel("Code could not be sent"),
    "practice.requirement_changed": _yes_no("MFA required in the practice", "MFA made optional in the practice",
                                            "required"),
    "practice.request_decided": _yes_no("Requirement change approved", "Requirement change declined", "approved"),
    "mfa.lost_access_decided": _lost_access_answer,
    "login.password_failed": _password_refused,
}


def label(event_type: str, outcome: str = "success", detail: dict | None = None) -> str:
    """The words for one event, e.g. "Code sent by text"; an unknown type reads "Other event"."""
    detail = detail if isinstance(detail, dict) else {}
    variant = _VARIANTS.get(event_type)
    words = (variant(detail) if variant else None) or LABELS.get(event_type, "Other event")
    if outcome not in ("success", None) and event_type not in _FAILURES_BY_NAME:
        words += " (failed)"
    return words


def choices() -> list[tuple[str, str]]:
    """(event type, label) pairs for the filter, in the order of the labels."""
    return sorted(LABELS.items(), key=lambda item: item[1].lower())


# -- the detail as a sentence -------------------------------------------------------------------

def _method(value) -> str | None:
    return methods.label(value, default="none") if value is not None else None


_PURPOSES = {"login": "Log In", "enroll": "setting up MFA"}
_WHERE = {"security": "the Security tab", "support": "the support area"}
_CODE_REFUSALS = {
    "InvalidCode": "wrong code", "MalformedCode": "not six digits", "CodeExpired": "code expired",
    "CodeUsedUp": "code tried too many times", "NoActiveCode": "no code waiting", "AccountLocked": "codes locked",
    "EnrollmentExpired": "set-up took too long",
    "SecurityCodesRejected": "security codes not accepted by VIP", "SameSecurityCodes": "the same code twice",
    "MalformedCredentialId": "not a Credential ID", "UnknownCredentialId": "Credential ID unknown to VIP",
    "VipUnavailable": "VIP could not be reached", "VipCodeNotChecked": "VIP could not be reached",
    "CredentialNotBound": "credential no longer at VIP",
}
_SESSION_ENDINGS = {"idle": "no activity for too long", "absolute": "the session reached its longest life",
                    "missing": "the session's times were missing"}
_FACTORS = {"password": "passwords", "code": "codes"}


def _requirement(value) -> str:
    return "MFA required for everyone" if value else "MFA optional"


@dataclass(frozen=True)
class Key:
    """How one detail key reads: its name and how its value is worded (None: leave the part out).
    Without a name, the words are the whole part; `none` words a value stored as None."""

    name: str
    words: Callable[[object], str | None] = str
    none: str | None = None


def _mapped(mapping: dict) -> Callable[[object], str | None]:
    return lambda value: mapping.get(value, str(value))


def _count(value) -> str | None:
    return str(value) if isinstance(value, int) else None


# Keys the trail stores, in the order they are read out. Keys that carry only an id
# (`request`, `invitation_id`) or that the label already says (`channel`, `approved`,
# `outcome`, `required`) are left out of the sentence.
KEYS: dict[str, Key | None] = {
    "method": Key("Method", _method),
    "previous_method": Key("Before", _method),
    "destination": Key("To", str),
    "purpose": Key("For", _mapped(_PURPOSES)),
    "where": Key("Where", _mapped(_WHERE)),
    "reason": Key("Reason", str),
    "ticket": Key("Ticket", str),
    "factor": Key("Wrong", _mapped(_FACTORS)),
    "failures": Key("In a row", _count),
    "minutes": Key("Locked for", lambda value: minutes_in_words(value) if isinstance(value, int) else None),
    "require": Key("Asked for", _requirement),
    "from": Key("Starting", str),
    "previous_from": Key("Previously starting", str),
    "request_id": Key("", lambda value: "At a practice admin's request"),
    "email": Key("To", str),
    "role": Key("Role", _mapped(ROLE_LABELS)),
    "channel": None,
    "approved": None,
    "outcome": None,
    "required": None,
    "request": None,
    "invitation_id": None,
}

# Per event, keys that read differently there.
_OVERRIDES: dict[str, dict[str, Key | None]] = {
    "login.succeeded": {"method": Key("Method", _method, none="password only (no MFA)")},
    "login.locked": {"factor": None, "failures": Key("Wrong passwords in a row", _count)},
    "mfa.locked": {"factor": None, "failures": Key("Wrong codes in a row", _count)},
    "mfa.code_failed": {"reason": Key("Why", _mapped(_CODE_REFUSALS))},
    "login.password_failed": {"reason": Key("Why", _mapped({"unknown email": "no account has this email"}))},
    "session.expired": {"reason": Key("Why", _mapped(_SESSION_ENDINGS))},
    "reauth.failed": {"reason": Key("Why", _mapped({"locked": "the account is locked"}))},
}


def _part(key: Key, value) -> str | None:
    if value is None and key.none:
        return f"{key.name}: {key.none}"
    if value is None or value == "":
        return None
    words = key.words(value)
    if not words:
        return None
    return f"{key.name}: {words}" if key.name else words


def _unknown(name: str, value) -> str | None:
    """A key no entry names yet: its words from the key, never an id, never a nested value."""
    if name == "id" or name.endswith("_id") or isinstance(value, (dict, list)) or value in (None, ""):
        return None
    words = {True: "yes", False: "no"}.get(value, value) if isinstance(value, bool) else value
    return f"{name.replace('_', ' ').capitalize()}: {words}"


def parts(event_type: str, detail: dict | None) -> list[str]:
    """The detail's parts in reading order, e.g. ["Reason: lost phone", "Ticket: SUP-1042"]."""
    if not isinstance(detail, dict):
        return []
    overrides = _OVERRIDES.get(event_type, {})
    found = []
    for name, key in KEYS.items():
        key = overrides.get(name, key)
        if key is None or name not in detail:
            continue
        part = _part(key, detail[name])
        if part:
            found.append(part)
    found += [part for name, value in sorted(detail.items()) if name not in KEYS
              for part in [_unknown(name, value)] if part]
    return found


def sentence(event_type: str, detail: dict | None) -> str:
    """The detail as one line: "Reason: lost phone · Ticket: SUP-1042" ("" when there is nothing to say)."""
    return SEPARATOR.join(parts(event_type, detail))
