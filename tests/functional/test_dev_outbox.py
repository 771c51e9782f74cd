"""The dev outbox: where development and tests read what the portal sent."""

from portal.delivery import send_email


def test_outbox_page_lists_messages_newest_first(app, client):
    """Does /dev/outbox show captured mail, newest at the top?"""
    send_email("first@example.test", "First subject", "password_reset", user=type("U", (), {"display_name": "A"}),
               link="http://x/1", minutes=60)
    send_email("second@example.test", "Second subject", "password_reset", user=type("U", (), {"display_name": "B"}),
               link="http://x/2", minutes=60)
    from portal.extensions import db

    db.session.commit()
    html = client.get("/dev/outbox").get_data(as_text=True)
    assert html.index("second@example.test") < html.index("first@example.test")
    assert "Second subject" in html


def test_outbox_page_is_404_when_off(make_app):
    """Is the outbox hidden when DEV_OUTBOX is off?"""
    app = make_app(DEV_OUTBOX=False, MAIL_TRANSPORT="smtp")
    assert app.test_client().get("/dev/outbox").status_code == 404


def test_outbox_cli_prints_the_same(app, runner):
    send_email("cli@example.test", "CLI subject", "password_reset", user=type("U", (), {"display_name": "C"}),
               link="http://x/3", minutes=60)
    from portal.extensions import db

    db.session.commit()
    result = runner.invoke(args=["outbox", "list"])
    assert result.exit_code == 0
    assert "to cli@example.test" in result.output
    assert "Subject: CLI subject" in result.output
    assert "http://x/3" in result.output
