"""Reading codes and keys the way a person would: from messages and from the page."""

import re

import pyotp

HTMX = {"HX-Request": "true", "HX-Target": "security-panel"}


def code_in(text: str) -> str:
    match = re.search(r"\b(\d{6})\b", text)
    assert match, text
    return match.group(1)


def last_code(outbox, recipient: str, channel: str) -> str:
    """The newest code sent to `recipient` (notices about the account may arrive after it)."""
    codes = [m for m in outbox.messages(recipient, channel) if "verification code" in m.body_text]
    assert codes, f"no code was sent to {recipient}"
    return code_in(codes[-1].body_text)


def manual_key(html: str) -> str:
    match = re.search(r'<code class="manual-key" id="manual-key">([A-Z2-7 ]+)</code>', html)
    assert match, "no manual key on the page"
    return match.group(1).replace(" ", "")


def confirm_password(client, password, **kwargs):
    return client.post("/account/security/confirm-password", data={"password": password}, **kwargs)


def totp_now(secret: str, clock) -> str:
    return pyotp.TOTP(secret).at(clock.now())
