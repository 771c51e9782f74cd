"""TOTP secrets at rest: Fernet encryption with keys from configuration, and key rotation."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from portal.extensions import db
from portal.mfa import crypto, totp
from portal.mfa.crypto import InvalidToken
from tests.factories import make_enrollment, make_user


@pytest.fixture
def keys():
    return {"new": Fernet.generate_key().decode(), "old": Fernet.generate_key().decode()}


def with_keys(make_app, *keys):
    return make_app(MFA_ENCRYPTION_KEYS=list(keys)).app_context()


def test_encrypted_secret_is_not_the_secret_and_decrypts_back(app):
    """Is a stored secret unreadable as such, and still recoverable by the server?"""
    secret = totp.new_secret()
    token = crypto.encrypt(secret)
    assert token != secret and secret not in token
    assert crypto.decrypt(token) == secret


def test_the_enrollment_column_holds_ciphertext(app):
    """Could someone reading mfa_enrollments learn a user's authenticator secret?"""
    user = make_user()
    secret = make_enrollment(user, "totp")
    stored = db.session.execute(text("SELECT totp_secret FROM mfa_enrollments WHERE user_id = :id"),
                                {"id": user.id}).scalar_one()
    assert secret not in stored
    assert crypto.decrypt(stored) == secret


def test_a_different_key_cannot_decrypt(app, make_app, keys):
    """Does a database copied to a server with another key give up no secret?"""
    with with_keys(make_app, keys["old"]):
        token = crypto.encrypt("JBSWY3DPEHPK3PXP")
    with with_keys(make_app, keys["new"]):
        with pytest.raises(InvalidToken):
            crypto.decrypt(token)


def test_keys_rotate_without_losing_secrets(app, make_app, keys):
    """With keys [new, old], is an old secret still read, and rotated so the new key alone reads it?"""
    with with_keys(make_app, keys["old"]):
        old_token = crypto.encrypt("JBSWY3DPEHPK3PXP")
    with with_keys(make_app, keys["new"], keys["old"]):
        assert crypto.decrypt(old_token) == "JBSWY3DPEHPK3PXP"
        rotated = crypto.rotate(old_token)
        fresh = crypto.encrypt("KRSXG5CTMVRXEZLU")
    with with_keys(make_app, keys["new"]):
        assert crypto.decrypt(rotated) == "JBSWY3DPEHPK3PXP"
        assert crypto.decrypt(fresh) == "KRSXG5CTMVRXEZLU"
    with with_keys(make_app, keys["old"]):
        with pytest.raises(InvalidToken):
            crypto.decrypt(rotated)


def test_no_key_configured_refuses_to_encrypt(app, make_app):
    """Does a server without encryption keys refuse rather than store a secret in the clear?"""
    with with_keys(make_app):
        with pytest.raises(RuntimeError):
            crypto.encrypt("JBSWY3DPEHPK3PXP")
