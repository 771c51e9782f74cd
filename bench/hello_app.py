"""The floor: a bare Flask route served by the same gunicorn settings as the portal."""

from flask import Flask

app = Flask(__name__)


@app.route("/hello")
def hello():
    return "hello"
