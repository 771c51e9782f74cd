"""Command-line tools: demo data and real-use practice and user creation."""

from sqlalchemy import func, select

from portal.accounts import passwords
from portal.cli import DEMO_PASSWORD
from portal.extensions import db
from portal.models import Practice, User

EXPECTED_USERS = {
    ("clinician@demo.test", "clinician", "Demo Family Practice"),
    ("staff@demo.test", "staff", "Demo Family Practice"),
    ("admin@demo.test", "practice_admin", "Demo Family Practice"),
    ("provider@required.test", "clinician", "Required MFA Clinic"),
    ("admin@required.test", "practice_admin", "Required MFA Clinic"),
    ("support@portal.test", "support", None),
}


def snapshot():
    db.session.expire_all()
    practices = {(p.id, p.name, p.mfa_required) for p in db.session.scalars(select(Practice))}
    users = {
        (u.id, u.email, u.role, u.practice.name if u.practice else None, u.password_hash, u.active, u.email_verified_at)
        for u in db.session.scalars(select(User))
    }
    return practices, users


def test_seed_demo_creates_exactly_the_demo_data(runner):
    """Does seed-demo create the two practices and six users the README promises?"""
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert DEMO_PASSWORD in result.output
    practices, users = snapshot()
    assert {(name, required) for _, name, required in practices} == {
        ("Demo Family Practice", False),
        ("Required MFA Clinic", True),
    }
    assert {(email, role, practice) for _, email, role, practice, *_ in users} == EXPECTED_USERS
    for user in db.session.scalars(select(User)):
        assert passwords.verify_password(user.password_hash, DEMO_PASSWORD)
        assert user.email_verified_at is not None


def test_seed_demo_twice_gives_the_same_data(runner):
    """Is seed-demo idempotent: same rows, same ids, same hashes?"""
    runner.invoke(args=["seed-demo"])
    first = snapshot()
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0
    assert snapshot() == first


def test_seed_demo_refused_in_production(make_app, app):
    from config import ProductionConfig

    prod = make_app(ENV_NAME="production")
    with prod.app_context():
        result = prod.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code != 0
    assert "development only" in result.output
    assert db.session.scalar(select(func.count(User.id))) == 0
    assert ProductionConfig.ENV_NAME == "production"


def test_create_practice_and_user_with_prompted_password(runner):
    """Can an operator create a practice and a user, typing the password at a prompt?"""
    assert runner.invoke(args=["create-practice", "Lakeside Clinic"]).exit_code == 0
    result = runner.invoke(
        args=["create-user", "Dr.Lee@Lakeside.test", "--practice", "Lakeside Clinic", "--role", "clinician",
              "--name", "Dr Lee"],
        input="a long typed passphrase\na long typed passphrase\n",
    )
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User).where(User.email == "dr.lee@lakeside.test"))
    assert user.practice.name == "Lakeside Clinic"
    assert user.email_verified_at is not None
    assert passwords.verify_password(user.password_hash, "a long typed passphrase")


def test_create_user_has_no_password_argument(runner):
    """Is there no way to pass the password in argv (where it lands in shell history)?"""
    result = runner.invoke(args=["create-user", "--help"])
    assert "--password" in result.output  # the prompt's option exists...
    result = runner.invoke(args=["create-user", "x@example.test", "--role", "support"], input="short\nshort\n")
    assert result.exit_code != 0
    assert "Use at least 12 characters." in result.output


def test_create_user_errors_are_clear(runner):
    runner.invoke(args=["create-practice", "One"])
    missing = runner.invoke(args=["create-user", "a@example.test", "--role", "staff"],
                            input="a long typed passphrase\n" * 2)
    assert missing.exit_code != 0 and "--practice is required" in missing.output
    unknown = runner.invoke(args=["create-user", "a@example.test", "--role", "staff", "--practice", "Nope"],
                            input="a long typed passphrase\n" * 2)
    assert unknown.exit_code != 0 and "No practice named 'Nope'" in unknown.output
    support = runner.invoke(args=["create-user", "s@example.test", "--role", "support", "--practice", "One"],
                            input="a long typed passphrase\n" * 2)
    assert support.exit_code != 0 and "belong to no practice" in support.output
    duplicate = runner.invoke(args=["create-practice", "One"])
    assert duplicate.exit_code != 0 and "already exists" in duplicate.output
    assert db.session.scalar(select(func.count(User.id))) == 0


def test_rotate_keys_reencrypts_secrets_under_the_newest_key(make_app, app):
    """After `flask rotate-keys`, can the old key be dropped without breaking enrolled apps?"""
    from cryptography.fernet import Fernet

    from portal.mfa import crypto
    from portal.models import MfaEnrollment
    from tests.factories import make_enrollment, make_user

    old_key, new_key = app.config["MFA_ENCRYPTION_KEYS"][0], Fernet.generate_key().decode()
    secret = make_enrollment(make_user(), "totp")
    rotating = make_app(MFA_ENCRYPTION_KEYS=[new_key, old_key])
    with rotating.app_context():
        result = rotating.test_cli_runner().invoke(args=["rotate-keys"])
    assert result.exit_code == 0 and "Re-encrypted 1" in result.output
    only_new = make_app(MFA_ENCRYPTION_KEYS=[new_key])
    with only_new.app_context():
        token = db.session.scalar(select(MfaEnrollment.totp_secret))
        assert crypto.decrypt(token) == secret
    only_old = make_app(MFA_ENCRYPTION_KEYS=[old_key])
    with only_old.app_context():
        import pytest
        from cryptography.fernet import InvalidToken

        with pytest.raises(InvalidToken):
            crypto.decrypt(db.session.scalar(select(MfaEnrollment.totp_secret)))
