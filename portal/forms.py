"""The base of every form: Flask-WTF (CSRF) plus a refusal of control characters."""

from __future__ import annotations

import re

from flask_wtf import FlaskForm
from wtforms import StringField

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
