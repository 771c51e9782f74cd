"""Command-line tools: demo data, practices and users for real use, the dev outbox."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select

from portal import clock
from portal.accounts import passwords, users
from portal.accounts.errors import AccountError
from portal.delivery import outbox
from portal.extensions import db
from portal.models import Practice, User
from portal.models.user import ROLES

DEMO_PASSWORD = "Demo-Passw0rd!"
DEMO_PRACTICES = {"Demo Family Practice": False, "Required MFA Clinic": True}
DEMO_USERS = (
    ("clinician@demo.test", "Casey Clinician", "clinician", "Demo Family Practice"),
    ("staff@demo.test", "Sam Staff", "staff", "Demo Family Practice"),
    ("admin@demo.test", "Alex Admin", "practice_admin", "Demo Family Practice"),
    ("provider@required.test", "Pat Provider", "clinician", "Required MFA Clinic"),
    ("admin@required.test", "Robin Admin", "practice_admin", "Required MFA Clinic"),
    ("support@portal.test", "Sasha Support", "support", None),
)


def seed_demo() -> None:
    """Create or reset the demo practices and users (idempotent)."""
    password_hash = passwords.hash_password(DEMO_PASSWORD)
    practices = {}
    for name, required in DEMO_PRACTICES.items():
        practice = db.session.scalar(select(Practice).where(Practice.name == name))
        if practice is None:
            practice = Practice(name=name)
            db.session.add(practice)
        practice.mfa_required = required
        practices[name] = practice
    for email, display_name, role, practice_name in DEMO_USERS:
        user = db.session.scalar(select(User).where(User.email == email))
        if user is None:
            user = User(email=email, session_version=1)
            db.session.add(user)
        user.display_name = display_name
        user.role = role
        user.practice = practices[practice_name] if practice_name else None
        user.active = True
        if user.email_verified_at is None:
            user.email_verified_at = clock.now()
        if user.password_hash is None or not passwords.verify_password(user.password_hash, DEMO_PASSWORD):
            user.password_hash = password_hash
    db.session.commit()


@click.command("seed-demo")
@with_appcontext
def seed_demo_command():
    """Create the demo practices and users (safe to run again)."""
    if current_app.config["ENV_NAME"] == "production":
        raise click.ClickException("seed-demo is for development only")
    seed_demo()
    click.echo("Demo data ready. Every demo user's password is: " + DEMO_PASSWORD)
    for email, _, role, practice in DEMO_USERS:
        click.echo(f"  {email:<24} {role:<15} {practice or '(support)'}")
    click.echo("These accounts are for demonstration only; never load them into a real deployment.")


@click.command("create-practice")
@click.argument("name")
@with_appcontext
def create_practice_command(name):
    """Create a practice called NAME."""
    name = name.strip()
    if not name:
        raise click.ClickException("The practice name cannot be empty")
    if db.session.scalar(select(Practice).where(Practice.name == name)) is not None:
        raise click.ClickException(f"A practice named {name!r} already exists")
    db.session.add(Practice(name=name))
    db.session.commit()
    click.echo(f"Created practice {name!r}")


@click.command("create-user")
@click.argument("email")
@click.option("--name", "display_name", help="Display name (defaults to the email's local part)")
@click.option("--practice", "practice_name", help="Practice name (not for support users)")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.password_option("--password", prompt="Password", help="Prompted; never pass it on the command line")
@with_appcontext
def create_user_command(email, display_name, practice_name, role, password):
    """Create a user with a verified email; the password is read from a prompt."""
    practice = None
    try:
        if role != "support":
            if not practice_name:
                raise click.ClickException("--practice is required for this role")
            practice = users.get_practice(practice_name)
        elif practice_name:
            raise click.ClickException("Support users belong to no practice")
        user = users.create_user(
            email=email,
            display_name=display_name or email.split("@")[0],
            role=role,
            practice=practice,
            password=password,
            email_verified_at=clock.now(),
        )
        db.session.commit()
    except AccountError as error:
        db.session.rollback()
        raise click.ClickException(str(error)) from error
    click.echo(f"Created {user.role} {user.email}")


outbox_group = AppGroup("outbox", help="Read the development outbox.")


@outbox_group.command("list")
@click.option("--limit", default=20, show_default=True)
def list_outbox_command(limit):
    """Print captured messages, newest first."""
    if not current_app.config["DEV_OUTBOX"]:
        raise click.ClickException("The dev outbox is off (set DEV_OUTBOX=1)")
    for message in outbox.latest(limit):
        click.echo(f"#{message.id} {message.created_at:%Y-%m-%d %H:%M:%S} UTC  {message.channel}"
                   f"  to {message.recipient}")
        if message.subject:
            click.echo(f"  Subject: {message.subject}")
        for line in message.body_text.strip().splitlines():
            click.echo(f"  {line}")
        click.echo("")


audit_group = AppGroup("audit", help="Check, seal and checkpoint the audit trail.")


@audit_group.command("verify")
@click.option("--checkpoints", "checkpoint_files", multiple=True, type=click.Path(dir_okay=False),
              help="A file of signed checkpoints (AUDIT_CHECKPOINT_PATH, or the shipped log); repeat for several")
def verify_audit_command(checkpoint_files):
    """Check every sealed row's MAC in chain order, rows waiting too long to be sealed, and each
    checkpoint; print a summary, naming the first bad row; exit 1 on any problem."""
    from portal.audit.verify import verify

    report = verify(checkpoint_files)
    click.echo(report.summary(), err=not report.ok)
    if not report.ok:
        raise SystemExit(1)


@audit_group.command("seal")
def seal_audit_command():
    """Seal every committed unsealed row now (the queue does it every AUDIT_SEAL_SECONDS)."""
    from portal.audit import seal

    count = seal.seal_pending(limit=None)
    click.echo(f"Sealed {count} audit event(s).")


@audit_group.command("checkpoint")
def checkpoint_audit_command():
    """Write a signed checkpoint now (log, AUDIT_CHECKPOINT_PATH, database copy) and print it."""
    from portal.audit import seal

    seal.seal_pending(limit=None)
    body = seal.write_checkpoint(force=True)
    if body is None:
        raise click.ClickException("another sealer holds the seal lock; try again")
    click.echo(f"Checkpoint at seal #{body['seq']} written to {current_app.config['AUDIT_CHECKPOINT_PATH']}")


@audit_group.command("new-key")
@click.argument("key_id")
def new_audit_key_command(key_id):
    """Print a fresh AUDIT_KEYS entry KEY_ID:base64 (put it first in AUDIT_KEYS)."""
    from portal.audit import keys

    line = keys.new_key_line(key_id)
    keys.parse([line])  # the id is checked like AUDIT_KEYS' own
    click.echo(line)


@click.command("rotate-keys")
@with_appcontext
def rotate_keys_command():
    """Re-encrypt every stored TOTP secret under the newest MFA_ENCRYPTION_KEYS key."""
    from portal.mfa import crypto
    from portal.models import MfaEnrollment, MfaPendingEnrollment

    count = 0
    for model in (MfaEnrollment, MfaPendingEnrollment):
        for record in db.session.scalars(select(model).where(model.totp_secret.is_not(None))):
            record.totp_secret = crypto.rotate(record.totp_secret)
            count += 1
    db.session.commit()
    click.echo(f"Re-encrypted {count} authenticator secret(s) under the newest key. "
               "Older keys can be removed from MFA_ENCRYPTION_KEYS once every instance runs with this list.")


queue_group = AppGroup("queue", help="Run and inspect the task queue.")


@queue_group.command("work")
@click.option("--workers", default=2, show_default=True, help="Worker threads in this consumer")
def queue_work_command(workers):
    """Run a consumer: queued notices and periodic house-keeping, until Ctrl-C or SIGTERM."""
    from portal import tasks

    tasks.run_consumer(current_app._get_current_object(), workers=workers)


@queue_group.command("status")
def queue_status_command():
    """Print how many tasks wait, are kept for an outage, and failed for good."""
    from sqlalchemy import func

    from portal import tasks
    from portal.models import DeferredTask, FailedTask

    depth = tasks.queue_depth()
    click.echo(f"waiting: {'unreachable' if depth is None else depth}")
    click.echo(f"kept during an outage: {db.session.scalar(select(func.count(DeferredTask.id)))}")
    click.echo(f"failed for good: {db.session.scalar(select(func.count(FailedTask.id)))}")


COMMANDS = (seed_demo_command, create_practice_command, create_user_command, outbox_group, audit_group,
            rotate_keys_command, queue_group)


def init_app(app: Flask) -> None:
    for command in COMMANDS:
        app.cli.add_command(command)
