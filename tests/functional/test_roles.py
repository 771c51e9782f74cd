"""Role access: only practice admins reach the practice area."""

import pytest

from portal.extensions import db
from portal.models import Invitation
from tests.factories import PASSWORD, make_enrollment, make_user


@pytest.mark.parametrize("role", ["clinician", "staff"])
def test_non_admins_get_403_on_practice_pages(client, auth, role):
    """Can a clinician or staff member open or post to the admin pages?"""
    make_user(f"{role}@example.test", role=role)
    auth.login(f"{role}@example.test", PASSWORD)
    assert client.get("/practice/users").status_code == 403
    response = client.post("/practice/invitations",
                           data={"email": "new@example.test", "display_name": "New", "role": "practice_admin"})
    assert response.status_code == 403
    assert db.session.scalar(db.select(db.func.count(Invitation.id))) == 0


def test_support_gets_403_on_practice_pages(client, auth):
    """Support staff belong to no practice: is the practice area closed to them?"""
    support = make_user("support@example.test", role="support")
    secret = make_enrollment(support, "totp")
    assert auth.login_totp("support@example.test", PASSWORD, secret).status_code == 303
    assert client.get("/practice/users").status_code == 403


def test_admin_sees_only_their_practice_users(client, auth):
    """Does the admin page list this practice's people and nobody else's?"""
    admin = make_user("admin@example.test", role="practice_admin", display_name="Ada Admin")
    make_user("colleague@example.test", practice=admin.practice, display_name="Cole League")
    make_user("stranger@example.test", display_name="Stan Stranger")
    auth.login("admin@example.test", PASSWORD)
    html = client.get("/practice/users").get_data(as_text=True)
    assert "Cole League" in html and "Ada Admin" in html
    assert "Stan Stranger" not in html and "stranger@example.test" not in html


def test_admin_menu_links_to_practice_users(client, auth):
    """Does the menu offer the practice area only to admins?"""
    make_user("admin2@example.test", role="practice_admin")
    auth.login("admin2@example.test", PASSWORD)
    assert "Practice users" in client.get("/").get_data(as_text=True)
    auth.logout()
    make_user("clin@example.test")
    auth.login("clin@example.test", PASSWORD)
    assert "Practice users" not in client.get("/").get_data(as_text=True)
