"""With CSRF protection on, as in production: is every state-changing request checked?"""

import re

from tests.conftest import token_from
from tests.factories import PASSWORD, make_user


def log_in(app, email: str, **user) -> tuple[object, str]:
    """A user logged in through the real form; returns their client and the Log In page's token."""
    make_user(email, **user)
    client = app.test_client()
    token = token_from(client.get("/login"))
    client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
    return client, token


def test_login_without_token_is_refused(csrf_app, app):
    """Does a forged Log In POST without a token get a 400?"""
    make_user("csrf@example.test")
    client = csrf_app.test_client()
    response = client.post("/login", data={"email": "csrf@example.test", "password": PASSWORD})
    assert response.status_code == 400
    assert "This form has expired" in response.get_data(as_text=True)
    assert client.get("/").status_code == 303


def test_login_with_token_works(csrf_app, app):
    """Does the form the portal served still work?"""
    make_user("csrf2@example.test")
    client = csrf_app.test_client()
    token = token_from(client.get("/login"))
    response = client.post("/login", data={"email": "csrf2@example.test", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 303


def test_logout_without_token_is_refused(csrf_app, app):
    """Can another site log a user out with a bare POST?"""
    client, _ = log_in(csrf_app, "csrf3@example.test")
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200


def test_htmx_header_token_is_accepted(csrf_app, app):
    """Do HTMX requests carrying X-CSRFToken (from hx-headers) pass, and bare ones fail?"""
    client, _ = log_in(csrf_app, "csrf4@example.test")
    page = client.get("/").get_data(as_text=True)
    header_token = re.search(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', page).group(1)
    assert client.post("/logout", headers={"HX-Request": "true"}).status_code == 400
    assert client.post("/logout", headers={"HX-Request": "true", "X-CSRFToken": header_token}).status_code == 303


def test_invitation_post_without_token_is_refused(csrf_app, app):
    """Can a practice admin be tricked into sending an invitation?"""
    client, _ = log_in(csrf_app, "csrf-admin@example.test", role="practice_admin")
    response = client.post("/practice/invitations",
                           data={"email": "x@example.test", "display_name": "X", "role": "staff"})
    assert response.status_code == 400


def test_a_new_session_id_brings_a_new_token_that_the_next_form_uses(csrf_app, app):
    """After Log In renews the session id, is the old page's token refused and the new page's accepted?"""
    client, old_token = log_in(csrf_app, "csrf5@example.test")
    dashboard = client.get("/").get_data(as_text=True)
    new_token = re.search(r'name="csrf_token" value="([^"]+)"', dashboard).group(1)  # the logout form
    assert new_token != old_token
    assert client.post("/logout", data={"csrf_token": old_token}).status_code == 400
    assert client.post("/logout", data={"csrf_token": new_token}).status_code in (302, 303)
    assert client.get("/").status_code == 303
