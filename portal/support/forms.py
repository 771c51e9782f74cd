from wtforms import (
    DateField,
    HiddenField,
    PasswordField,
    RadioField,
    SelectChoice,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional

from portal.forms import CodeForm, PortalForm


class ConfirmForm(CodeForm):
    password = PasswordField("Password", validators=[DataRequired(message="Enter your password."), Length(max=256)])
    submit = SubmitField("Confirm")


class ClearMfaForm(PortalForm):
    reason = TextAreaField("Reason", validators=[DataRequired(message="Give a reason."), Length(max=500)],
                           description="For example: lost phone, identity checked by a call-back to the practice.")
    ticket = StringField("Support ticket reference",
                         validators=[DataRequired(message="Give the ticket reference."), Length(max=100)])
    submit = SubmitField("Clear MFA settings")


class PreviewedForm(PortalForm):
    """A practice-wide change: the first post shows its effect; the confirmation posts again
    with `seen`, the token of the numbers support saw (first-step forms render only the CSRF
    field of their hidden ones: `form.hidden_tag("csrf_token")`)."""

    seen = HiddenField(validators=[Optional(), Length(max=64)])

    @property
    def confirming(self) -> bool:
        return bool(self.seen.data)


class RequirementForm(PreviewedForm):
    when = RadioField("When", choices=[SelectChoice("now", "Required now"),
                                       SelectChoice("from", "Required from a date (a grace period)")],
                      default="now", validators=[Optional()])
    starts_on = DateField("Start date (UTC)", validators=[Optional()],
                          description="Up to 30 days ahead. Until then users without MFA are reminded, not forced.")
    reason = TextAreaField("Reason", validators=[DataRequired(message="Give a reason."), Length(max=500)])
    submit = SubmitField("Save")


class StopRequirementForm(PreviewedForm):
    reason = TextAreaField("Reason", id="stop-reason",
                           validators=[DataRequired(message="Give a reason."), Length(max=500)])
    submit = SubmitField("Save")


class UnlockForm(PortalForm):
    reason = TextAreaField("Reason for unlocking", id="unlock-reason",
                           validators=[DataRequired(message="Give a reason."), Length(max=500)])
    submit = SubmitField("Unlock account")


class DeclineLostAccessForm(PortalForm):
    note = TextAreaField("Note for the user (emailed)",
                         validators=[DataRequired(message="Give a note for the user."), Length(max=1000)])
    submit = SubmitField("Decline")


class DecideRequestForm(PreviewedForm):
    note = TextAreaField("Note for the practice admin",
                         validators=[DataRequired(message="Give a note for the practice admin."), Length(max=1000)])
    approve = SubmitField("Approve")
    decline = SubmitField("Decline")
