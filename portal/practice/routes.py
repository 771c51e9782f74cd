import csv
import io
import re

from flask import Response, abort, flash, redirect, render_template, request, stream_with_context, url_for
from flask_login import current_user

from portal import clock
from portal.access import role_required
from portal.accounts import invitations
from portal.accounts.errors import AccountError
from portal.audit import EVENT_TYPES
from portal.audit.query import AuditFilter, events
from portal.delivery import DeliveryError
from portal.enforcement import requirement, review
from portal.enforcement.errors import EnforcementError
from portal.htmx import hx_redirect, render
from portal.models.user import ROLE_LABELS
from portal.practice import bp
from portal.practice.forms import InviteUserForm, RequestRequirementForm


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
                row.enrolled_at.strftime("%Y-%m-%d %H:%M") if row.enrolled_at else "",
                row.last_mfa_at.strftime("%Y-%m-%d %H:%M") if row.last_mfa_at else "",
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
    filters = AuditFilter.from_args(request.args, practice_id=current_user.practice_id)
    rows, next_before = events(filters)
    return render_template("support/list_audit.html", rows=rows, filters=filters, next_before=next_before,
                           event_types=EVENT_TYPES, endpoint="practice.list_audit", practice_scope=True)


def _users_page(form: InviteUserForm, status: int = 200):
    practice_id = current_user.practice_id
    return render_template("practice/list_users.html", form=form, members=review.members(practice_id),
                           pending=invitations.open_for_practice(practice_id, now=clock.now()),
                           role_labels=ROLE_LABELS), status


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
