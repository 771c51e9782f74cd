from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portal import auth_state, clock, limits
from portal.access import safe_next
from portal.accounts import lockout, lost_access, signin
from portal.accounts.errors import AccountError
from portal.audit.query import audit_page
from portal.enforcement import directory, requirement
from portal.enforcement.errors import EnforcementError
from portal.extensions import db
from portal.forms import read_search
from portal.htmx import hx_redirect, render, wants_fragment
from portal.mfa.enrollment import clear_by_support
from portal.mfa.errors import CannotClear, MfaError
from portal.models import LostAccessRequest, Practice, RequirementRequest, User
from portal.support import bp, guard
from portal.support.forms import (
    ClearMfaForm,
    ConfirmForm,
    DecideRequestForm,
    DeclineLostAccessForm,
    RequirementForm,
    StopRequirementForm,
    UnlockForm,
)
from portal.wording import format_time


@bp.before_request
def restrict_to_support():
    """404 for anyone but support staff on an allowed network; then ask for a fresh confirmation."""
    if not current_user.is_authenticated or current_user.role != "support" or not guard.network_allowed():
        abort(404)
    confirmed = auth_state.proven_within(auth_state.PASSWORD_AND_CODE, clock.now())
    if request.endpoint != "support.confirm" and not confirmed:
        target = request.full_path.rstrip("?") if request.method == "GET" else None
        return hx_redirect(url_for("support.confirm", next=safe_next(target)))
    return None


@bp.route("/confirm", methods=["GET", "POST"])
@limits.reauth_per_address
def confirm():
    """Confirm with password and authenticator code before support work."""
    form = ConfirmForm()
    next_url = safe_next(request.args.get("next"))
    status = 200
    if form.validate_on_submit():
        try:
            signin.confirm_for_support(current_user._get_current_object(), form.password.data, form.code.data,
                                       now=clock.now())
        except AccountError as error:
            form.password.errors.append(str(error))
            status = error.status
        except MfaError as error:
            form.code.errors.append(str(error))
            status = error.status
        else:
            return redirect(next_url or url_for("support.index"), code=303)
    elif form.errors:
        status = 400
    return render_template("support/confirm.html", form=form, next_url=next_url), status


def _index(status=200, error=None, answering=None, **answer):
    """The overview; `answering` is a request being answered (its confirmation or its errors)."""
    queue = lost_access.open_requests()
    now = clock.now()
    return render_template("support/index.html", practices=directory.practices_overview(),
                           open_requests=requirement.open_requests(), decide_form=DecideRequestForm(),
                           lost_access=queue, clear_form=ClearMfaForm(), decline_form=DeclineLostAccessForm(),
                           clear_effects={row.request.id: requirement.clear_effect(row.user, now=now) for row in queue},
                           error=error, answering=answering, answer=answer), status


@bp.route("/")
def index():
    """Show open requests (lost access, practice admins'), every practice's requirement, and user search."""
    return _index()


@bp.route("/lost-access/<id:request_id>/clear", methods=["POST"])
def clear_lost_access(request_id):
    """Answer a lost-access request by clearing the user's MFA (reason and ticket)."""
    req = db.get_or_404(LostAccessRequest, request_id)
    form = ClearMfaForm()
    if not form.validate_on_submit():
        return _index(400, error=" ".join(form.reason.errors + form.ticket.errors))
    try:
        lost_access.clear(req, actor=current_user, reason=form.reason.data, ticket=form.ticket.data, now=clock.now())
    except CannotClear as error:
        return _index(error.status, error=str(error))
    flash(f"MFA settings cleared for {req.user.email}. Their sessions were ended and they were emailed.", "success")
    return hx_redirect(url_for("support.index"))


@bp.route("/lost-access/<id:request_id>/decline", methods=["POST"])
def decline_lost_access(request_id):
    """Decline a lost-access request with a note that is emailed to the user."""
    req = db.get_or_404(LostAccessRequest, request_id)
    form = DeclineLostAccessForm()
    if not form.validate_on_submit():
        return _index(400, error=" ".join(form.note.errors))
    try:
        lost_access.decline(req, actor=current_user, note=form.note.data, now=clock.now())
    except CannotClear as error:
        return _index(error.status, error=str(error))
    flash(f"Request from {req.user.email} declined; they were emailed your note.", "success")
    return hx_redirect(url_for("support.index"))


@bp.route("/users")
def find_users():
    """Find users by email or practice name."""
    q, problem = read_search(request.args.get("q"))
    results = directory.find_users(q) if q else []
    return render_template("support/find_users.html", q=q, results=results, problem=problem)


def _user_page(user: User, form: ClearMfaForm, status: int = 200, error: str | None = None):
    now = clock.now()
    return render_template("support/show_user.html", user=user, state=directory.mfa_state(user, now),
                           clear_effect=requirement.clear_effect(user, now=now), form=form, unlock_form=UnlockForm(),
                           error=error), status


@bp.route("/users/<id:user_id>")
def show_user(user_id):
    """Show one user's MFA state (never a secret, a code or a full phone number)."""
    return _user_page(db.get_or_404(User, user_id), ClearMfaForm())


@bp.route("/users/<id:user_id>/clear-mfa", methods=["POST"])
def clear_mfa(user_id):
    """Clear a user's MFA settings, with a reason and a ticket reference."""
    user = db.get_or_404(User, user_id)
    form = ClearMfaForm()
    if not form.validate_on_submit():
        return _user_page(user, form, 400)
    try:
        clear_by_support(user, actor=current_user, reason=form.reason.data, ticket=form.ticket.data, now=clock.now())
    except CannotClear as error:
        return _user_page(user, form, error.status, error=str(error))
    flash(f"MFA settings cleared for {user.email}. Their sessions were ended and they were emailed.", "success")
    return hx_redirect(url_for("support.show_user", user_id=user.id))


@bp.route("/users/<id:user_id>/unlock", methods=["POST"])
def unlock_user(user_id):
    """End a user's password or code lock early, with a reason (audited)."""
    user = db.get_or_404(User, user_id)
    form = UnlockForm()
    if not form.validate_on_submit():
        return _user_page(user, ClearMfaForm(), 400, error=" ".join(form.reason.errors))
    try:
        lockout.unlock(user, actor=current_user, reason=form.reason.data, now=clock.now())
    except AccountError as error:
        return _user_page(user, ClearMfaForm(), error.status, error=str(error))
    flash(f"{user.email} can log in again: their lock was ended.", "success")
    return hx_redirect(url_for("support.show_user", user_id=user.id))


def _practice_page(practice, form=None, stop_form=None, status=200, error=None, preview=None, outdated=False):
    """The practice page, or (for an HTMX swap) its requirement panel: the forms, or the
    confirmation of a change with its effect (`preview`)."""
    return render("support/show_practice.html", "support/_requirement_panel.html", target="requirement-panel",
                  practice=practice, form=form or RequirementForm(), stop_form=stop_form or StopRequirementForm(),
                  error=error, preview=preview, outdated=outdated,
                  open_request=requirement.open_request(practice.id)), status


@bp.route("/practices/<id:practice_id>")
def show_practice(practice_id):
    """Show a practice's requirement and the forms to change it."""
    return _practice_page(db.get_or_404(Practice, practice_id))


@bp.route("/practices/<id:practice_id>/requirement", methods=["POST"])
def set_requirement(practice_id):
    """Require MFA for every user of the practice (now or from a date), move the date, or stop:
    the first post shows what the change will do, the confirmation makes it."""
    practice = db.get_or_404(Practice, practice_id)
    wanted = request.form.get("required")
    if wanted not in ("on", "off"):
        return _practice_page(practice, status=400, error="Choose whether MFA is to be required.")
    form = RequirementForm() if wanted == "on" else StopRequirementForm()
    page_forms = {"form": form} if wanted == "on" else {"stop_form": form}
    if not form.validate_on_submit():
        return _practice_page(practice, status=400, **page_forms)
    starts = None
    if wanted == "on" and form.when.data == "from":
        if form.starts_on.data is None:
            form.starts_on.errors.append("Choose the start date.")
            return _practice_page(practice, status=400, **page_forms)
        starts = requirement.start_of_day(form.starts_on.data)
    try:
        if not form.confirming:
            shown = requirement.preview(practice, wanted == "on", starts, now=clock.now())
            return _practice_page(practice, preview=shown, **page_forms)
        done = requirement.confirm_change(practice, wanted == "on", starts, seen=form.seen.data, actor=current_user,
                                          reason=form.reason.data, now=clock.now())
    except EnforcementError as error:
        return _practice_page(practice, status=error.status, error=str(error), **page_forms)
    if not done.applied:
        return _practice_page(practice, status=409, preview=done.preview, outdated=True, **page_forms)
    preview = done.preview
    if preview.starts:
        flash(f"MFA will be required for {practice.name} from {format_time(preview.starts)}. "
              f"{preview.emailed} user(s) without MFA will be emailed now and reminded before then.", "success")
    elif preview.required:
        flash(f"MFA is now required for {practice.name}. {preview.emailed} user(s) without MFA will be emailed.",
              "success")
    else:
        flash(f"MFA is no longer required for {practice.name}.", "success")
    return hx_redirect(url_for("support.show_practice", practice_id=practice.id))


def _request_page(req, form, status=200, error=None, preview=None, outdated=False):
    """The overview with one request's answer: its confirmation, or its form with an error (an
    HTMX swap gets that request's part of the page)."""
    if wants_fragment(f"request-{req.id}"):
        return render_template("support/_request.html", req=req, decide_form=form, answer_form=form,
                               request_error=error, preview=preview, outdated=outdated), status
    closed = req.status != "pending"  # no longer listed: its error goes at the top
    return _index(status, error=error if closed else None, answering=req, answer_form=form, request_error=error,
                  preview=preview, outdated=outdated)


@bp.route("/requests/<id:request_id>/decide", methods=["POST"])
def decide_request(request_id):
    """Decline a practice admin's request, or approve it: first its effect, then the confirmation."""
    req = db.get_or_404(RequirementRequest, request_id)
    form = DecideRequestForm()
    if not form.validate_on_submit():
        return _request_page(req, form, 400)
    approve = bool(form.approve.data)
    try:
        if not approve:
            requirement.decide(req, actor=current_user, approve=False, note=form.note.data, now=clock.now())
        elif not form.confirming:
            return _request_page(req, form, preview=requirement.preview_request(req, now=clock.now()))
        else:
            done = requirement.approve_request(req, seen=form.seen.data, actor=current_user, note=form.note.data,
                                               now=clock.now())
            if not done.applied:
                return _request_page(req, form, 409, preview=done.preview, outdated=True)
    except EnforcementError as error:
        return _request_page(req, form, error.status, error=str(error))
    flash(f"Request #{req.id} from {req.practice.name} {req.status}.", "success")
    return hx_redirect(url_for("support.index"))


@bp.route("/audit")
def list_audit():
    """The whole audit trail, filtered and paged."""
    page = audit_page(request.args)
    return render_template("support/list_audit.html", page=page, endpoint="support.list_audit")
