from wtforms import DateField, PasswordField, RadioField, SelectChoice, StringField, SubmitField, TextAreaField
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


class RequirementForm(PortalForm):
    when = RadioField("When", choices=[SelectChoice("now", "Required now"),
                                       SelectChoice("from", "Required from a date (a grace period)")],
                      default="now", validators=[Optional()])
    starts_on = DateField("Start date (UTC)", validators=[Optional()],
                          description="Up to 30 days ahead. Until then users without MFA are reminded, not forced.")
    reason = TextAreaField("Reason", validators=[DataRequired(message="Give a reason."), Length(max=500)])
    submit = SubmitField("Save")


class StopRequirementForm(PortalForm):
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


class DecideRequestForm(PortalForm):
    note = TextAreaField("Note for the practice admin",
                         validators=[DataRequired(message="Give a note for the practice admin."), Length(max=1000)])
    approve = SubmitField("Approve")
    decline = SubmitField("Decline")
