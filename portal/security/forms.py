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


_SECURITY_CODE = {"autocomplete": "off", "inputmode": "numeric", "spellcheck": "false", "autocapitalize": "off"}


class VipCredentialForm(PortalForm):
    """Symantec VIP Access: the Credential ID and two consecutive security codes from the app."""

    credential_id = StringField(
        "Credential ID",
        validators=[DataRequired(message="Enter the Credential ID shown in VIP Access."),
                    Length(max=40, message="Enter the Credential ID: four letters and eight digits.")],
        description="Shown in VIP Access under Credential ID: four letters and eight digits, for example VSST12345678.",
        render_kw={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "characters"},
    )
    first_code = StringField(
        "Security Code 1",
        validators=[DataRequired(message="Enter the security code VIP Access shows now."),
                    Length(max=32, message="Enter the 6-digit security code.")],
        description="The 6-digit security code VIP Access shows now.",
        render_kw=_SECURITY_CODE,
    )
    second_code = StringField(
        "Security Code 2",
        validators=[DataRequired(message="Enter the next security code VIP Access shows."),
                    Length(max=32, message="Enter the 6-digit security code.")],
        description="Wait for the code to change, then enter the next one.",
        render_kw=_SECURITY_CODE,
    )
    submit = SubmitField("Verify")
