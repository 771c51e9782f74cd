"""Authenticator apps: RFC 6238 codes, the drift window, replay, secrets, the otpauth URI and the QR."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest

from portal.mfa import totp

# RFC 6238 appendix B: the SHA-1 seed is the ASCII string "12345678901234567890", in base32.
RFC_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
NOW = datetime(2030, 3, 4, 9, 0, 10, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def code_for_step(secret: str, step: int) -> str:
    """What an authenticator app would show during time step `step`."""
    return pyotp.TOTP(secret).generate_otp(step)


@pytest.mark.parametrize(
    ("seconds", "code"),
    [(59, "287082"), (1111111109, "081804"), (1111111111, "050471"), (1234567890, "005924"), (2000000000, "279037")],
)
def test_rfc_6238_sha1_vectors_are_accepted(seconds, code):
    """Does the server accept exactly the RFC 6238 SHA-1 test codes at their times?"""
    assert totp.matching_step(RFC_SECRET, code, at(seconds), None) == seconds // 30


def test_an_rfc_code_is_refused_an_hour_later():
    """Is a correct code from another time refused (the check is not a rubber stamp)?"""
    assert totp.matching_step(RFC_SECRET, "287082", at(59 + 3600), None) is None


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_codes_one_step_either_side_are_accepted(offset):
    """Does a phone whose clock is 30 s off still work?"""
    current = totp.step_at(NOW)
    code = code_for_step(RFC_SECRET, current + offset)
    assert totp.matching_step(RFC_SECRET, code, NOW, None) == current + offset


@pytest.mark.parametrize("offset", [-2, 2])
def test_codes_two_steps_away_are_refused(offset):
    """Is a code from a minute ago, or a minute ahead, refused?"""
    current = totp.step_at(NOW)
    code = code_for_step(RFC_SECRET, current + offset)
    # Guard the fixture: the code must not also be the code of an accepted step.
    assert code not in {code_for_step(RFC_SECRET, current + d) for d in (-1, 0, 1)}
    assert totp.matching_step(RFC_SECRET, code, NOW, None) is None


def test_a_used_step_cannot_be_replayed():
    """Once a step was accepted, is its code (or an older one) refused, and a newer one accepted?"""
    current = totp.step_at(NOW)
    code = code_for_step(RFC_SECRET, current)
    assert totp.matching_step(RFC_SECRET, code, NOW, current - 1) == current
    assert totp.matching_step(RFC_SECRET, code, NOW, current) is None
    older = code_for_step(RFC_SECRET, current - 1)
    assert totp.matching_step(RFC_SECRET, older, NOW, current - 1) is None
    newer = code_for_step(RFC_SECRET, current + 1)
    assert totp.matching_step(RFC_SECRET, newer, NOW, current) == current + 1


def test_new_secret_has_at_least_160_random_bits():
    """Does a new secret decode to at least 20 bytes, without padding, and differ every time?"""
    secrets_seen = {totp.new_secret() for _ in range(50)}
    assert len(secrets_seen) == 50
    for secret in secrets_seen:
        assert "=" not in secret
        assert re.fullmatch(r"[A-Z2-7]+", secret)
        padded = secret + "=" * (-len(secret) % 8)
        assert len(base64.b32decode(padded)) >= 20


def test_provisioning_uri_round_trips_through_pyotp(app):
    """Does an authenticator app read back our issuer, the email as the name, and the secret?"""
    secret = totp.new_secret()
    uri = totp.provisioning_uri(secret, "clinician@demo.test")
    parsed = pyotp.parse_uri(uri)
    assert parsed.secret == secret
    assert parsed.name == "clinician@demo.test"
    assert parsed.issuer == app.config["MFA_ISSUER"] == "Practice Portal"
    assert (parsed.digits, parsed.interval) == (6, 30)
    assert parsed.now() == pyotp.TOTP(secret).now()


def test_provisioning_uri_is_well_formed_and_says_nothing_else(app):
    """Is the URI otpauth://totp/Issuer:email with an unpadded secret and nothing beyond issuer and key?"""
    secret = totp.new_secret()
    uri = totp.provisioning_uri(secret, "clinician@demo.test")
    parts = urlparse(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert parts.path == "/Practice%20Portal:clinician%40demo.test"
    query = parse_qs(parts.query)
    assert query["secret"] == [secret]
    assert "=" not in query["secret"][0]
    assert query["issuer"] == ["Practice Portal"]
    assert set(query) <= {"secret", "issuer", "algorithm", "digits", "period"}


def test_qr_code_is_inline_svg_from_our_own_origin(app):
    """Is the QR an accessible inline SVG that loads nothing from anywhere else?"""
    svg = totp.qr_svg(totp.provisioning_uri(totp.new_secret(), "clinician@demo.test"))
    assert svg.startswith("<svg")
    assert 'role="img"' in svg.split(">", 1)[0]
    assert "<?xml" not in svg
    without_namespace = svg.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "http" not in without_namespace
    assert "href" not in svg and "<image" not in svg and "<script" not in svg


def test_manual_key_is_shown_in_groups_of_four():
    """Is the key for typing by hand split into groups of four characters?"""
    assert totp.grouped("ABCDEFGHIJKLMNOP") == "ABCD EFGH IJKL MNOP"
    secret = totp.new_secret()
    groups = totp.grouped(secret).split(" ")
    assert "".join(groups) == secret
    assert all(len(group) == 4 for group in groups)
