from portal.forms import PortalForm
from wtforms import EmailField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length


class LoginForm(PortalForm):
    email = EmailField("Email", validators=[DataRequired(message="Enter your email address."), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(message="Enter your password."), Length(max=256)])
    submit = SubmitField("Log In")


class ForgotPasswordForm(PortalForm):
    email = EmailField("Email", validators=[DataRequired(message="Enter your email address."), Length(max=254)])
    submit = SubmitField("Email me a reset link")


class NewPasswordForm(PortalForm):
    password = PasswordField(
        "New password",
        validators=[DataRequired(message="Choose a password."), Length(max=256)],
        description="At least 12 characters. A passphrase of several words works well.",
    )
    confirm = PasswordField(
        "Repeat the password",
        validators=[DataRequired(message="Repeat the password."), EqualTo("password", message="The two passwords differ.")],
    )
    submit = SubmitField("Set password")


class LogoutForm(PortalForm):
    submit = SubmitField("Log Out")




class CodeForm(PortalForm):
    code = StringField(
        "Enter the code provided",
        validators=[DataRequired(message="Enter the 6-digit code."), Length(max=32, message="Enter the 6-digit code: six digits, 0 to 9.")],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "spellcheck": "false", "autocapitalize": "off"},
    )
    submit = SubmitField("Verify")


class ResendForm(PortalForm):
    """The "click here" resend: a button with no fields, CSRF-protected."""
