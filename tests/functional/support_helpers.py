"""Support's practice-wide changes as a browser makes them: the form, then its confirmation."""

from __future__ import annotations

from html.parser import HTMLParser


class _Forms(HTMLParser):
    """Each form's action and the fields a submit sends (hidden inputs and named buttons)."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"action": attrs.get("action"), "fields": {}})
        elif self.forms and tag in ("input", "button") and attrs.get("name"):
            if tag == "button" or attrs.get("type") == "hidden":
                self.forms[-1]["fields"][attrs["name"]] = attrs.get("value") or ""


def confirmation(html: str) -> tuple[str, dict]:
    """The confirmation form on a page (the one carrying `seen`): its action and the fields it posts."""
    parser = _Forms()
    parser.feed(html)
    found = [form for form in parser.forms if "seen" in form["fields"]]
    assert len(found) == 1, html
    return found[0]["action"], found[0]["fields"]


def change_confirmed(client, url: str, data: dict, **kwargs):
    """Post a change; if the portal shows its confirmation (200), confirm it. Returns the last response."""
    first = client.post(url, data=data, **kwargs)
    if first.status_code != 200:
        return first
    action, fields = confirmation(first.get_data(as_text=True))
    assert action == url
    return client.post(action, data=fields, **kwargs)
