"""Masked destinations, shown only after the password step."""

from portal.mfa.phones import mask_phone


def mask_email(email: str) -> str:
    """c******n@demo.test: first and last letter of the local part, the domain in full."""
    local, _, domain = email.partition("@")
    if len(local) == 1:
        masked = "*"
    elif len(local) == 2:
        masked = local[0] + "*"
    else:
        masked = local[0] + "*" * (len(local) - 2) + local[-1]
    return f"{masked}@{domain}"


def mask_destination(method: str, *, email: str, phone_e164: str | None) -> str | None:
    if method == "sms" and phone_e164:
        return mask_phone(phone_e164)
    if method == "email":
        return mask_email(email)
    return None
