"""Errors of the delivery layer."""


class DeliveryError(Exception):
    """A message could not be handed to its transport; safe to show as a retry prompt."""

    status = 503
