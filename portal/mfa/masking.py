"""Masked email addresses, shown only after the password step (phones: `phones.mask_phone`)."""


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
