"""The base of every form (Flask-WTF with CSRF, control characters refused) and the forms that
several blueprints share."""

from __future__ import annotations

import re

from flask_wtf import FlaskForm
from wtforms import StringField, SubmitField
from wtforms.validators import DataRequired, Length

# NUL and other control characters have no place in names, notes, emails or codes; PostgreSQL
# cannot even store NUL. Tab and line breaks stay allowed (text areas).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class PortalForm(FlaskForm):
    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        for field in self:
            if isinstance(field, StringField) and isinstance(field.data, str) and _CONTROL.search(field.data):
                field.errors = [*field.errors, "Remove the control characters from this field."]
                valid = False
        return valid


class CodeForm(PortalForm):
    """The code entry the Log In code page, the Security tab and support share."""

    code = StringField(
        "Enter the code provided",
        validators=[DataRequired(message="Enter the 6-digit code."),
                    Length(max=32, message="Enter the 6-digit code: six digits, 0 to 9.")],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "spellcheck": "false",
                   "autocapitalize": "off"},
    )
    submit = SubmitField("Verify")


class ResendForm(PortalForm):
    """The "click here" resend: a button with no fields, CSRF-protected."""
