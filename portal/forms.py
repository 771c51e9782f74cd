"""The base of every form (Flask-WTF with CSRF, control characters refused) and the forms that
several blueprints share."""

from __future__ import annotations

import re

from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length

# NUL and other control characters have no place in names, notes, emails or codes; PostgreSQL
# cannot even store NUL. Tab and line breaks stay allowed (text areas).
_CONTROL_BUT_LINES = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"  # all but tab, line feed, carriage return
_CONTROL = re.compile(f"[{_CONTROL_BUT_LINES}]")
# Characters that do not show but change what is shown: zero-width spaces and joiners, and the
# marks that reverse the direction of what follows. In a one-line field (a name, an email, a
# ticket) they can make a blank name, or "nimdA" read as "Admin" to a colleague or support.
# Text areas keep them (a note written in a right-to-left language needs its marks), and so do
# passwords (emoji sequences use the zero-width joiner) and hidden fields (the portal's own
# tokens, which a changed one fails to match).
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u061c]")


SEARCH_LIMIT = 100  # characters of a typed search that are used
_ANY_CONTROL = re.compile(f"[{_CONTROL_BUT_LINES}\t\n\r]")  # a search box is one line: those too


def read_search(raw: str | None) -> tuple[str, str | None]:
    """A search box's value as (the term to search for, what the page should say about it, or
    None). Control characters are in no name or email (and PostgreSQL cannot take NUL in a
    parameter): such a search is left out. A long one is cut."""
    term = (raw or "").strip()
    if _ANY_CONTROL.search(term):
        return "", "The search holds characters no name or email has, so it was left out."
    if len(term) > SEARCH_LIMIT:
        return term[:SEARCH_LIMIT], (f"The search is longer than {SEARCH_LIMIT} characters: "
                                     f"its first {SEARCH_LIMIT} were used.")
    return term, None


class PortalForm(FlaskForm):
    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        for field in self:
            if not isinstance(field, StringField) or not isinstance(field.data, str):
                continue
            if _CONTROL.search(field.data):
                field.errors = [*field.errors, "Remove the control characters from this field."]
                valid = False
            elif not isinstance(field, TextAreaField | PasswordField | HiddenField) and _INVISIBLE.search(field.data):
                field.errors = [*field.errors, "Remove the invisible characters (such as zero-width spaces or "
                                               "right-to-left marks) from this field."]
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
