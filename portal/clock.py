"""The server's clock. Routes read time here (never from the client) so tests can move it."""

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)
