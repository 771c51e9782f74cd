"""Words a person reads about time: lifetimes and moments, always from the configured values.

Pages and messages never carry a literal duration; they pass the setting through these
helpers (also Jinja filters), so changing a lifetime in configuration changes every sentence
that mentions it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Flask

_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine",
          10: "ten", 12: "twelve", 15: "fifteen", 20: "twenty", 30: "thirty"}


def minutes(duration: timedelta) -> int:
    """Whole minutes of a lifetime (at least one)."""
    return max(1, int(duration.total_seconds() // 60))


def _count(number: int, unit: str) -> str:
    word = _WORDS.get(number, str(number))
    return f"{word} {unit}" if number == 1 else f"{word} {unit}s"


def minutes_in_words(value: int | timedelta) -> str:
    """5 -> "five minutes": lifetimes read as words on pages (the specification says "Five minutes")."""
    return _count(minutes(value) if isinstance(value, timedelta) else int(value), "minute")


def wait_in_minutes(retry_after: timedelta) -> str:
    """How long to wait, rounded up to whole minutes, in digits: "1 minute", "15 minutes"."""
    count = max(1, -(-int(retry_after.total_seconds()) // 60))
    return f"{count} minute" if count == 1 else f"{count} minutes"


def duration_in_words(duration: timedelta) -> str:
    """A lifetime in its largest whole unit: "thirty days", "one hour", "48 hours", "fifteen minutes".

    Days only from a week up: "48 hours" reads better than "two days" for a link's life.
    """
    seconds = int(duration.total_seconds())
    if seconds >= 7 * 86400 and seconds % 86400 == 0:
        return _count(seconds // 86400, "day")
    if seconds >= 3600 and seconds % 3600 == 0:
        return _count(seconds // 3600, "hour")
    if seconds >= 60 and seconds % 60 == 0:
        return _count(seconds // 60, "minute")
    return _count(seconds, "second")


def format_time(moment: datetime) -> str:
    """One format for moments, with their time zone: "2026-12-01 14:05 UTC"."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def init_app(app: Flask) -> None:
    app.jinja_env.filters.update(minutes=minutes, minutes_in_words=minutes_in_words,
                                 duration_in_words=duration_in_words, format_time=format_time)
