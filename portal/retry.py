"""Errors that tell the person when to try again: a 429 whose view sends Retry-After."""

from __future__ import annotations

from datetime import timedelta


class RetryLater(Exception):
    """Mixed into a package's error (listed first): `retry_after` says how long to wait."""

    status = 429

    def __init__(self, retry_after: timedelta, message: str):
        self.retry_after = retry_after
        super().__init__(message)
