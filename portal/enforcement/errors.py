class EnforcementError(Exception):
    """Base class; `str(error)` is a message fit to show the user."""

    status = 400


class NoChange(EnforcementError):
    def __init__(self, required: bool):
        super().__init__(f"MFA is already {'required' if required else 'not required'} for this practice.")


class AlreadyPending(EnforcementError):
    status = 409

    def __init__(self):
        super().__init__("There is already an open request for this practice. Support will answer it soon.")


class RequestClosed(EnforcementError):
    status = 409

    def __init__(self):
        super().__init__("This request was already decided.")


class ReasonRequired(EnforcementError):
    def __init__(self, what="a reason"):
        super().__init__(f"Give {what}.")


class InvalidStart(EnforcementError):
    """A start date for the requirement that is not allowed."""
