"""The audit trail's words: a label for every event type, and the detail read as a sentence.

The pages that show them are tested in tests/functional/test_audit_pages.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from portal.audit import EVENT_TYPES, labels

PORTAL = Path(__file__).resolve().parents[2] / "portal"


def test_every_event_type_has_a_label():
    """Does every event the trail can record have a plain label (a new event without one fails here)?"""
    missing = [event_type for event_type in EVENT_TYPES if event_type not in labels.LABELS]
    assert not missing, f"add a label in portal/audit/labels.py for {missing}"
    for event_type in EVENT_TYPES:
        words = labels.label(event_type, "success", {})
        assert words and event_type not in words and "." not in words and "_" not in words, event_type


def test_no_label_is_left_for_an_event_that_no_longer_exists():
    """Is every label for an event type the trail still records?"""
    assert set(labels.LABELS) <= set(EVENT_TYPES)


def _detail_keys_written_by_the_portal() -> dict[str, set[str]]:
    """Every key of a `detail` dict literal in the portal: record(..., detail={...}) or detail = {...}."""
    found: dict[str, set[str]] = {}

    def dict_keys(node):
        for child in ast.walk(node):
            if isinstance(child, ast.Dict):
                for key in child.keys:
                    if isinstance(key, ast.Constant) and isinstance(key.value, str):
                        yield key.value

    for path in PORTAL.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            values = []
            if isinstance(node, ast.Call):
                values = [keyword.value for keyword in node.keywords if keyword.arg == "detail"]
            elif isinstance(node, ast.Assign) and any(
                    isinstance(target, ast.Name) and target.id == "detail" for target in node.targets):
                values = [node.value]
            for value in values:
                for key in dict_keys(value):
                    found.setdefault(key, set()).add(str(path.relative_to(PORTAL.parent)))
    return found


def test_every_detail_key_the_portal_writes_has_plain_words():
    """Does every key a `record()` call stores in the detail have a plain name (or say it is left out)?"""
    written = _detail_keys_written_by_the_portal()
    assert {"reason", "ticket", "method", "destination"} <= set(written)  # the scan finds the calls
    missing = {key: sorted(paths) for key, paths in written.items() if key not in labels.KEYS}
    assert not missing, f"add these detail keys to KEYS in portal/audit/labels.py: {missing}"


@pytest.mark.parametrize("event_type, outcome, detail, expected", [
    ("mfa.code_sent", "success", {"channel": "sms"}, "Code sent by text"),
    ("mfa.code_sent", "success", {"channel": "email"}, "Code sent by email"),
    ("mfa.code_resent", "success", {"channel": "sms"}, "Code sent again by text"),
    ("mfa.code_send_failed", "failure", {"channel": "email"}, "Code could not be sent by email"),
    ("mfa.code_sent", "success", {}, "Code sent"),
    ("login.succeeded", "success", {"method": "totp"}, "Logged in"),
    ("mfa.cleared", "success", {}, "MFA cleared by support"),
    ("login.password_failed", "failure", {}, "Password refused"),
    ("login.password_failed", "failure", {"reason": "unknown email"}, "Log In with an unknown email"),
    ("practice.requirement_changed", "success", {"required": True}, "MFA required in the practice"),
    ("practice.requirement_changed", "success", {"required": False}, "MFA made optional in the practice"),
    ("practice.request_decided", "success", {"approved": False}, "Requirement change declined"),
    ("mfa.lost_access_decided", "success", {"outcome": "cleared"}, "Request to clear MFA approved"),
    ("mfa.enrolled", "failure", {}, "MFA turned on (failed)"),
    ("no.such_event", "success", {}, "Other event"),
])
def test_labels_read_the_outcome_and_the_detail(event_type, outcome, detail, expected):
    """Does the label name the channel, the decision or the failure where it matters?"""
    assert labels.label(event_type, outcome, detail) == expected


@pytest.mark.parametrize("event_type, detail, expected", [
    ("mfa.cleared", {"previous_method": "sms", "reason": "lost phone", "ticket": "SUP-1042"},
     "Before: SMS · Reason: lost phone · Ticket: SUP-1042"),
    ("mfa.code_sent", {"channel": "sms", "destination": "***-***-1234", "purpose": "login"},
     "To: ***-***-1234 · For: Log In"),
    ("mfa.code_failed", {"method": "totp", "purpose": "enroll", "reason": "CodeExpired"},
     "Method: Authenticator Apps · For: setting up MFA · Why: code expired"),
    ("login.succeeded", {"method": None}, "Method: password only (no MFA)"),
    ("login.succeeded", {"method": "email"}, "Method: Email"),
    ("mfa.switched", {"method": "email", "destination": "c***@oak.test", "previous_method": "totp"},
     "Method: Email · Before: Authenticator Apps · To: c***@oak.test"),
    ("login.locked", {"factor": "password", "failures": 10, "minutes": 15},
     "Wrong passwords in a row: 10 · Locked for: fifteen minutes"),
    ("mfa.locked", {"factor": "code", "failures": 5, "minutes": 15},
     "Wrong codes in a row: 5 · Locked for: fifteen minutes"),
    ("session.expired", {"reason": "idle"}, "Why: no activity for too long"),
    ("reauth.failed", {"where": "security", "reason": "locked"},
     "Where: the Security tab · Why: the account is locked"),
    ("invitation.sent", {"email": "new@oak.test", "role": "practice_admin"}, "To: new@oak.test · Role: Practice admin"),
    ("invitation.accepted", {"invitation_id": 7}, ""),
    ("mfa.lost_access_decided", {"request": 3, "outcome": "declined"}, ""),
    ("practice.requirement_changed",
     {"required": True, "from": "2026-12-08 09:00 UTC", "previous_from": None, "reason": "", "request_id": 4},
     "Starting: 2026-12-08 09:00 UTC · At a practice admin's request"),
    ("practice.request_made", {"request": 2, "require": False, "from": None}, "Asked for: MFA optional"),
    ("login.password_failed", {"reason": "unknown email"}, "Why: no account has this email"),
    ("support.unlocked", {"reason": "called from the front desk"}, "Reason: called from the front desk"),
])
def test_the_detail_reads_as_a_sentence(event_type, detail, expected):
    """Is the stored detail read out with plain names, methods by their label, and no id?"""
    assert labels.sentence(event_type, detail) == expected


def test_a_key_without_words_yet_is_named_plainly_and_ids_stay_out():
    """Does an unnamed key read as words, while ids, nested values and braces never appear?"""
    text = labels.sentence("logout", {"new_flag": True, "user_id": 12, "id": 5, "extra": {"a": 1}})
    assert text == "New flag: yes"
    assert labels.sentence("logout", None) == "" and labels.sentence("logout", "not a dict") == ""


def test_the_filter_choices_are_labels_for_every_event_type():
    """Does the event filter offer every event type by its label, without a code in the words?"""
    choices = labels.choices()
    assert {code for code, _ in choices} == set(EVENT_TYPES)
    assert all("." not in words and "_" not in words for _, words in choices)
