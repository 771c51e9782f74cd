from flask import flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select

from portal.access import role_required
from portal.accounts import invitations
from portal.accounts.errors import AccountError
from portal.delivery import DeliveryError
from portal.extensions import db
from portal.models import Invitation, User
from portal.models.base import utcnow
from portal.practice import bp
from portal.practice.forms import InviteUserForm


@bp.before_request
@role_required("practice_admin")
def require_practice_admin():
    """Keep the whole area to practice admins."""


def _users_page(form: InviteUserForm, status: int = 200):
    practice_id = current_user.practice_id
    members = db.session.scalars(select(User).where(User.practice_id == practice_id).order_by(User.display_name))
    pending = db.session.scalars(
        select(Invitation)
        .where(
            Invitation.practice_id == practice_id,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > utcnow(),
        )
        .order_by(Invitation.created_at.desc())
    )
    return render_template("practice/list_users.html", form=form, members=list(members), pending=list(pending)), status


@bp.route("/users")
def list_users():
    """List the practice's users and open invitations, with the invite form."""
    return _users_page(InviteUserForm())


@bp.route("/invitations", methods=["POST"])
def invite_user():
    """Invite a person to the practice by email and role."""
    form = InviteUserForm()
    if not form.validate_on_submit():
        return _users_page(form, 400)
    try:
        invitations.invite(
            admin=current_user,
            email=form.email.data,
            display_name=form.display_name.data,
            role=form.role.data,
            now=utcnow(),
        )
    except (AccountError, ValueError) as error:
        form.email.errors.append(str(error))
        return _users_page(form, 400)
    except DeliveryError:
        form.email.errors.append("The invitation email could not be sent. Nothing was saved; please try again.")
        return _users_page(form, 503)
    flash(f"Invitation sent to {form.email.data.strip()}.", "success")
    return redirect(url_for("practice.list_users"), code=303)
