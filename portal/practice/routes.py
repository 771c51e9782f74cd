import csv
import io
import re

from flask import Response, abort, flash, redirect, render_template, request, stream_with_context, url_for
from flask_login import current_user

from portal import clock, limits
from portal.access import role_required
from portal.accounts import invitations
from portal.accounts.errors import AccountError, InvitationNotFound
from portal.audit.query import audit_page
from portal.delivery import DeliveryError
from portal.enforcement import requirement, review
from portal.enforcement.errors import EnforcementError
from portal.htmx import hx_redirect, render, wants_fragment
from portal.models.user import ROLE_LABELS
from portal.practice import bp
from portal.practice.forms import InvitationActionForm, InviteUserForm, RequestRequirementForm
from portal.wording import format_time


@bp.before_request
@role_required("practice_admin")
def require_practice_admin():
    """Keep the whole area to practice admins."""


def _review_context(query: review.TableQuery, request_form=None, request_error=None):
    practice = current_user.practice
    kept = review.counts(practice.id)
    return dict(
        practice=practice,
        coverage=kept.coverage,
        table=review.users_page(practice.id, query, known=kept),
        request_form=request_form or RequestRequirementForm(),
        open_request=requirement.open_request(practice.id),
        latest_request=requirement.latest_request(practice.id),
        request_error=request_error,
    )


@bp.route("/")
def review_enforcement():
    """Review MFA enforcement: requirement, coverage, and the users table."""
    query = review.TableQuery.from_args(request.args)
    return render("practice/review_enforcement.html", "practice/_user_table.html", target="user-table",
                  **_review_context(query))


@bp.route("/users.csv")
def export_users():
    """Download the users table (same filter, search and order) as CSV, streamed."""
    query = review.TableQuery.from_args(request.args)
    practice_id = current_user.practice_id

    def generate():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["Name", "Email", "Role", "Active", "MFA", "Method", "Enrolled (UTC)", "Last MFA login (UTC)"])
        for row in review.export_rows(practice_id, query):
            writer.writerow([
                _cell(row.name), _cell(row.email), row.role, "yes" if row.active else "no",
                "yes" if row.method else "no", row.method_label if row.method else "",
                _csv_time(row.enrolled_at), _csv_time(row.last_mfa_at),
            ])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate(0)
        yield buffer.getvalue()

    response = Response(stream_with_context(generate()), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{_csv_name(current_user.practice.name)}"'
    return response


def _csv_name(practice_name: str) -> str:
    """alder-clinic-mfa-users-2026-12-01.csv: the practice and the day, in safe characters only."""
    slug = re.sub(r"[^a-z0-9]+", "-", practice_name.lower()).strip("-")[:60] or "practice"
    return f"{slug}-mfa-users-{clock.now():%Y-%m-%d}.csv"


def _csv_time(moment) -> str:
    """The pages' one format without its zone, which the column's heading names: a spreadsheet
    reads "2026-12-01 14:05" as a date and time."""
    return format_time(moment).removesuffix(" UTC") if moment else ""


def _cell(value: str) -> str:
    """Neutralise spreadsheet formulas in user-supplied text (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@bp.route("/requests", methods=["POST"])
def request_requirement():
    """Ask support to require MFA for the practice (or to stop requiring it)."""
    form = RequestRequirementForm()
    query = review.TableQuery()
    if not form.validate_on_submit():
        return render_template("practice/review_enforcement.html", **_review_context(query, form)), 400
    require = not current_user.practice.mfa_required
    starts = requirement.start_of_day(form.starts_on.data) if require and form.starts_on.data else None
    try:
        requirement.make_request(current_user, require=require, note=form.note.data, now=clock.now(), starts=starts)
    except EnforcementError as error:
        return render_template("practice/review_enforcement.html",
                               **_review_context(query, form, request_error=str(error))), error.status
    flash("Your request was sent to support. Its state is shown on this page.", "success")
    return hx_redirect(url_for("practice.review_enforcement"))


@bp.route("/users/<id:user_id>")
def show_member(user_id):
    """One user of this practice and their MFA state; other practices' users do not exist here."""
    row = review.member(current_user.practice_id, user_id)
    if row is None:
        abort(404)
    return render_template("practice/show_member.html", row=row)


@bp.route("/audit")
def list_audit():
    """This practice's security events."""
    page = audit_page(request.args, practice_id=current_user.practice_id)
    return render_template("support/list_audit.html", page=page, endpoint="practice.list_audit",
                           practice_scope=True)


def _users_context(form: InviteUserForm | None = None, invitation_error: str | None = None) -> dict:
    practice_id = current_user.practice_id
    return dict(form=form or InviteUserForm(), members=review.members(practice_id),
                pending=invitations.open_for_practice(practice_id, now=clock.now()),
                action_form=InvitationActionForm(), role_labels=ROLE_LABELS, invitation_error=invitation_error)


def _users_page(form: InviteUserForm, status: int = 200):
    return render_template("practice/list_users.html", **_users_context(form)), status


@bp.route("/users")
def list_users():
    """Invite users; list open invitations."""
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
            now=clock.now(),
        )
    except (AccountError, ValueError) as error:
        form.email.errors.append(str(error))
        return _users_page(form, 400)
    except DeliveryError:
        form.email.errors.append("The invitation email could not be sent. Nothing was saved; please try again.")
        return _users_page(form, 503)
    flash(f"Invitation sent to {form.email.data.strip()}.", "success")
    return redirect(url_for("practice.list_users"), code=303)


@bp.route("/invitations/<id:invitation_id>/resend", methods=["POST"])
@limits.invitation_resend_per_user
def resend_invitation(invitation_id):
    """Send an open invitation again with a fresh link; the old link stops working."""
    try:
        invitation = invitations.resend(admin=current_user, invitation_id=invitation_id, now=clock.now())
    except InvitationNotFound:
        abort(404)
    except AccountError as error:
        return _invitations_changed(error=str(error), status=error.status)
    except DeliveryError:
        return _invitations_changed(error="The invitation email could not be sent. Nothing changed: the earlier "
                                          "link still works. Please try again.", status=503)
    flash(f"Invitation sent again to {invitation.email}. The earlier link no longer works.", "success")
    return _invitations_changed()


@bp.route("/invitations/<id:invitation_id>/revoke", methods=["POST"])
def revoke_invitation(invitation_id):
    """Withdraw an open invitation: its link no longer works."""
    try:
        invitation = invitations.revoke(admin=current_user, invitation_id=invitation_id, now=clock.now())
    except InvitationNotFound:
        abort(404)
    except AccountError as error:
        return _invitations_changed(error=str(error), status=error.status)
    flash(f"Invitation to {invitation.email} revoked. Its link no longer works.", "success")
    return _invitations_changed()


def _invitations_changed(error: str | None = None, status: int = 200):
    """After a resend or revoke: HTMX gets the open invitations again (and the message); a
    plain form is sent back to the page (303), or gets it again with the error."""
    if error is None and not wants_fragment("open-invitations"):
        return redirect(url_for("practice.list_users"), code=303)
    return render("practice/list_users.html", "practice/_invitations.html", target="open-invitations",
                  **_users_context(invitation_error=error)), status
