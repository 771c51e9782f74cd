"""Small Jinja filters for wording on pages."""

from flask import Flask

_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine",
          10: "ten", 15: "fifteen", 30: "thirty"}


def minutes_in_words(minutes: int) -> str:
    """5 -> "five minutes": lifetimes read as words on pages (the specification says "Five minutes")."""
    word = _WORDS.get(int(minutes), str(int(minutes)))
    return f"{word} minute" if int(minutes) == 1 else f"{word} minutes"


def init_app(app: Flask) -> None:
    app.jinja_env.filters["minutes_in_words"] = minutes_in_words
