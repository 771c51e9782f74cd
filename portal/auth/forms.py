from wtforms import EmailField, PasswordField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length

from portal.forms import PortalForm


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
        validators=[DataRequired(message="Repeat the password."),
                    EqualTo("password", message="The two passwords differ.")],
    )
    submit = SubmitField("Set password")
