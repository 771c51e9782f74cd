"""Fixtures of the practice review tests (test_practice_review_*.py).

Most of those tests build a second practice, Birch Surgery, whose people must never show up
for Alder Clinic's admin.
"""

from __future__ import annotations

import pytest

from tests.factories import make_enrollment, make_practice, make_user
from tests.functional.practice_review_helpers import login_admin


@pytest.fixture
def other_practice():
    """Birch Surgery, whose people must never be seen by Alder Clinic's admin."""
    birch = make_practice("Birch Surgery")
    bob = make_user("bob@birch.test", practice=birch, display_name="Bob Birch")
    make_enrollment(bob, "totp")
    make_user("bella@birch.test", practice=birch, display_name="Bella Bay")
    make_user("birch-admin@birch.test", role="practice_admin", practice=birch, display_name="Bart Boss")
    return birch


@pytest.fixture
def alder(other_practice):
    """Alder Clinic's people other than its admin (whom `alder_admin` adds and logs in).

    With the admin, seven users: active are Ada Admin (no MFA), Ben and Cara (Authenticator
    Apps), Dan (SMS), Eve (Email) and Finn (no MFA); Gus is inactive and still has SMS set up.
    """
    practice = make_practice("Alder Clinic")
    for email, name, method in [
        ("ben@alder.test", "Ben Totp", "totp"),
        ("cara@alder.test", "Cara Totp", "totp"),
        ("dan@alder.test", "Dan Sms", "sms"),
        ("eve@alder.test", "Eve Email", "email"),
        ("finn@alder.test", "Finn None", None),
    ]:
        user = make_user(email, practice=practice, display_name=name)
        if method:
            make_enrollment(user, method)
    gus = make_user("gus@alder.test", practice=practice, display_name="Gus Gone", active=False)
    make_enrollment(gus, "sms")
    return practice


@pytest.fixture
def alder_admin(alder, auth):
    return login_admin(auth, alder)

