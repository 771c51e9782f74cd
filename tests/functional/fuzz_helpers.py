"""Shared by the fuzz tests (test_fuzz_*.py): can any input give a 500, a traceback or a stray write?

Hypothesis drives the public forms (Log In, the code step, links in emails) and the forms of a
logged-in user (phone number, invitations) with any Unicode text (NUL included), values up
to ~100 KB, missing and repeated fields, raw bytes, multipart bodies and wrong methods; and
every POST endpoint, for every role, with file parts and repeated fields (which the portal
refuses with a 400 before anything runs: portal/request_shape.py).

Function-scoped fixtures run once per test, not per example, so the database carries over
between examples: each property compares the state just before and just after its own
request. Expected side effects of a refused Log In (an audit row, a higher
users.failed_password_count, a lock and its notice) are not counted as writes.
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import parse_qsl, urlencode

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from sqlalchemy import MetaData, func, select
from werkzeug.datastructures import MultiDict

from portal.extensions import db
from portal.models import Invitation, MfaCode, MfaEnrollment, MfaPendingEnrollment, User

# database=None: no .hypothesis/ directory in the project; failures print their example.
FUZZ = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

E164 = "+12025550143"
CODE_HTMX = {"HX-Request": "true", "HX-Target": "code-step"}
PANEL_HTMX = {"HX-Request": "true", "HX-Target": "security-panel"}
CSRF_MESSAGE = "This form has expired or was not sent from the portal."

# Any Unicode text except lone surrogates (not encodable), NUL and control characters included.
TEXT = st.text()
# ~1 KB to ~100 KB: a short chunk repeated (multi-byte characters make the body up to ~1 MB).
HUGE = st.builds(
    lambda chunk, size: (chunk * (size // len(chunk) + 1))[:size],
    st.text(min_size=1, max_size=8),
    st.integers(min_value=1_000, max_value=100_000),
)
VALUE = st.one_of(TEXT, HUGE, st.sampled_from(["", " ", "\x00", "\r\n", "%00", "' OR '1'='1", "<script>"]))
# None leaves the field out; a list sends it several times (a 400: portal/request_shape.py).
FIELD = st.one_of(st.none(), VALUE, st.lists(VALUE, min_size=2, max_size=3))
EXTRA = st.lists(st.tuples(TEXT, TEXT), max_size=2)
ENCODING = st.sampled_from(["urlencoded", "urlencoded", "multipart", "raw"])
RAW_BODY = st.binary(max_size=2_000)

TABLES = {
    "users": User,
    "invitations": Invitation,
    "mfa_enrollments": MfaEnrollment,
    "mfa_pending_enrollments": MfaPendingEnrollment,
    "mfa_codes": MfaCode,
}


# -- helpers ------------------------------------------------------------------------------


def form_pairs(extra=(), **fields) -> list[tuple[str, str]]:
    """The fields as (name, value) pairs: None leaves a field out, a list repeats it."""
    pairs = []
    for name, value in fields.items():
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            pairs.append((name, item))
    return pairs + list(extra)


def repeats(pairs) -> bool:
    """True if some field name is sent more than once (the server refuses the form)."""
    names = [name for name, _ in pairs]
    return len(names) != len(set(names))


def first(value):
    """What the form sees for a field: the first value sent, or None."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def parsed_field(raw: bytes, name: str):
    """The first value of `name` in a raw urlencoded body, as the server parses it."""
    try:
        pairs = parse_qsl(raw.decode(), keep_blank_values=True)
    except ValueError:  # not UTF-8: the server sees an empty form
        return None
    return next((value for key, value in pairs if key == name), None)


def send(client, method: str, path: str, pairs, *, encoding: str = "urlencoded", raw: bytes = b"", headers=None):
    if encoding == "multipart":
        return client.open(path, method=method, data=MultiDict(pairs), content_type="multipart/form-data",
                           headers=headers)
    if encoding == "raw":
        return client.open(path, method=method, data=raw, content_type="application/x-www-form-urlencoded",
                           headers=headers)
    return client.open(path, method=method, data=urlencode(pairs), content_type="application/x-www-form-urlencoded",
                       headers=headers)


def _header_text(text: str) -> str:
    """A name or file name inside a multipart header, escaped as browsers do (HTML's form
    encoding: quote, backslash and line breaks percent-encoded)."""
    return (text.replace("%", "%25").replace('"', "%22").replace("\\", "%5C").replace("\r", "%0D")
            .replace("\n", "%0A"))


def multipart(parts) -> tuple[bytes, str]:
    """A multipart/form-data body as a browser writes it, and its content type. Each part is
    (name, text) for a field or (name, file name, content bytes, content type) for a file."""
    boundary = "----PortalFuzz" + secrets.token_hex(12)
    chunks = []
    for part in parts:
        disposition = f'form-data; name="{_header_text(part[0])}"'
        if len(part) == 2:
            head, body = f"Content-Disposition: {disposition}\r\n", part[1].encode()
        else:
            _, filename, content, content_type = part
            head = (f'Content-Disposition: {disposition}; filename="{_header_text(filename)}"\r\n'
                    f"Content-Type: {content_type}\r\n")
            body = content
        chunks.append(f"--{boundary}\r\n{head}\r\n".encode() + body + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def database_state() -> dict[str, list[tuple]]:
    """Every row of every table in the database (as it is, not as the models say): a request
    that writes anything at all changes it."""
    connection = db.session.connection()
    tables = MetaData()
    tables.reflect(bind=connection)
    state = {}
    for table in tables.sorted_tables:
        order = list(table.primary_key.columns) or list(table.columns)
        state[table.name] = [tuple(row) for row in connection.execute(select(table).order_by(*order))]
    db.session.rollback()
    return state


def assert_handled(response) -> str:
    """No server error and no stack trace, whatever was sent."""
    body = response.get_data(as_text=True)
    assert response.status_code < 500, (response.status_code, body[:300])
    assert "Traceback" not in body
    return body


def row_counts() -> dict[str, int]:
    counts = {name: db.session.scalar(select(func.count()).select_from(model)) for name, model in TABLES.items()}
    db.session.rollback()  # end the read so the next count sees the app's latest commits
    return counts


def count(model) -> int:
    value = db.session.scalar(select(func.count()).select_from(model))
    db.session.rollback()
    return value


def fresh(model, ident):
    db.session.expire_all()
    return db.session.get(model, ident)


def assert_logged_out(client) -> None:
    response = client.get("/")
    assert response.status_code == 303 and response.headers["Location"].startswith("/login")


def is_wellformed_code(raw) -> bool:
    """The portal's rule (checklist 14): at most 32 characters, then six ASCII digits once
    spaces, tabs and dashes are removed."""
    return (isinstance(raw, str) and len(raw) <= 32
            and re.fullmatch(r"[0-9]{6}", re.sub(r"[ \t-]", "", raw), re.ASCII) is not None)


# -- shared by the phone number and CSRF tests ---------------------------------------


def pending_rows():
    rows = db.session.execute(
        select(MfaPendingEnrollment.id, MfaPendingEnrollment.user_id, MfaPendingEnrollment.method,
               MfaPendingEnrollment.phone_e164).order_by(MfaPendingEnrollment.id)
    ).all()
    db.session.rollback()
    return [tuple(row) for row in rows]


def mutations(token: str):
    """Near misses of a real token: cut, one character changed, something appended, case flipped."""
    position = st.integers(min_value=0, max_value=len(token) - 1)
    return st.one_of(
        position.map(lambda i: token[:i]),
        st.tuples(position, st.characters()).map(lambda t: token[:t[0]] + t[1] + token[t[0] + 1:]),
        TEXT.map(lambda tail: token + tail),
        st.just(token.swapcase()),
        st.just(".".join(reversed(token.split(".")))),
    )

