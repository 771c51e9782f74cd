from wtforms import PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length

from portal.forms import PortalForm


class ConfirmPasswordForm(PortalForm):
    password = PasswordField("Password", validators=[DataRequired(message="Enter your password."), Length(max=256)])
    submit = SubmitField("Continue")


class ChooseDeviceForm(PortalForm):
    """The "Choose MFA Device:" buttons; the pressed button's value names the device."""


class PhoneNumberForm(PortalForm):
    phone = StringField(
        "Phone Number",
        validators=[DataRequired(message="Enter your phone number."),
                    Length(max=40, message="Enter a US phone number.")],
        description="A US mobile number that receives text messages, for example (555) 555-1234.",
        render_kw={"autocomplete": "tel-national", "inputmode": "tel"},
    )
    submit = SubmitField("Save Phone Number")
