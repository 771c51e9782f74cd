from dataclasses import dataclass


class DeliveryError(Exception):
    """A message could not be handed to its transport; safe to show as a retry prompt."""


@dataclass(frozen=True)
class EmailMessage:
    to: str
    subject: str
    text: str
    html: str
