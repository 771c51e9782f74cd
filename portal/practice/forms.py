from wtforms import DateField, EmailField, SelectChoice, SelectField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from portal.forms import PortalForm
from portal.models.user import PRACTICE_ROLES, ROLE_LABELS


class InviteUserForm(PortalForm):
    email = EmailField("Email", validators=[DataRequired(message="Enter the person's email address."), Length(max=254)])
    display_name = StringField("Name", validators=[DataRequired(message="Enter the person's name."), Length(max=120)])
    role = SelectField(
        "Role",
        choices=[SelectChoice(role, ROLE_LABELS[role]) for role in PRACTICE_ROLES],
        validate_choice=True,
    )
    submit = SubmitField("Send invitation")


class RequestRequirementForm(PortalForm):
    starts_on = DateField("From (optional, UTC)", validators=[Optional()],
                          description="Leave empty to ask for it at once, or pick a date up to 30 days ahead.")
    note = TextAreaField("Note for support (optional)", validators=[Optional(), Length(max=1000)])
    submit = SubmitField("Send request to support")


class InvitationActionForm(PortalForm):
    """Resend or revoke an open invitation: a button with no fields, CSRF-protected."""
