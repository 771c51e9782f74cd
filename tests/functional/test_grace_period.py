"""A grace period before a practice's MFA requirement bites: a start date, a banner, reminders
7 days and 1 day before and on the day (through the queue), then today's enforcement."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from portal.enforcement import requirement
from portal.extensions import db
from portal.models import AuditEvent, Practice, User
from tests.factories import PASSWORD, make_enrollment, make_practice, make_user
from tests.functional.mfa_helpers import totp_now
from tests.functional.support_helpers import change_confirmed


def _support(app, clock):
    client = app.test_client()
    user = make_user("support@portal.test", role="support")
    secret = make_enrollment(user, "totp")
    client.post("/login", data={"email": "support@portal.test", "password": PASSWORD})
    client.post("/login/code", data={"code": totp_now(secret, clock)})
    clock.advance(seconds=30)
    confirmed = client.post("/support/confirm", data={"password": PASSWORD, "code": totp_now(secret, clock)})
    assert confirmed.status_code == 303
    return client


def _practice():
    practice = make_practice("Grace Clinic")
    make_user("late@grace.test", practice=practice, display_name="Lee Late")
    make_user("later@grace.test", practice=practice, display_name="Lou Later")
    ready = make_user("ready@grace.test", practice=practice)
    make_enrollment(ready, "email")
    make_user("admin@grace.test", role="practice_admin", practice=practice)
    return practice


def _schedule(client, practice, day, reason="Give them two weeks"):
    return change_confirmed(client, f"/support/practices/{practice.id}/requirement",
                            {"required": "on", "when": "from", "starts_on": day.isoformat(), "reason": reason})


def _notices(outbox, text):
    return sorted(m.recipient for m in outbox.messages(channel="email") if text in (m.subject or ""))


def test_reminders_come_on_the_right_days_and_enrollment_is_forced_from_the_date(app, clock, outbox):
    """Before the date: a banner and no force; reminders a week and a day before and on the day,
    once each; from the date: forced enrollment at Log In and in live sessions."""
    support = _support(app, clock)
    practice = _practice()
    day = (clock.now() + timedelta(days=10)).date()
    response = _schedule(support, practice, day)
    assert response.status_code == 303
    starts = requirement.start_of_day(day)
    page = support.get(response.headers["Location"]).get_data(as_text=True)
    assert f"required from {starts:%Y-%m-%d} 00:00 UTC" in page
    assert _notices(outbox, "will require") == ["admin@grace.test", "late@grace.test", "later@grace.test"]

    user = app.test_client()
    user.post("/login", data={"email": "late@grace.test", "password": PASSWORD})
    dashboard = user.get("/")
    assert dashboard.status_code == 200  # not forced yet
    assert f"from <strong>{starts:%Y-%m-%d} 00:00 UTC</strong>" in dashboard.get_data(as_text=True)
    assert 'href="/account/security"' in dashboard.get_data(as_text=True)

    admin = app.test_client()
    admin.post("/login", data={"email": "admin@grace.test", "password": PASSWORD})
    review = admin.get("/practice/").get_data(as_text=True)
    assert f"MFA required from {starts:%Y-%m-%d} 00:00 UTC: 3 users still to set it up." in review
    assert "If MFA were required today" in review  # the preview keeps working

    def reminders_at(moment):
        clock.current = moment
        return requirement.send_due_reminders(clock.now())

    assert reminders_at(starts - timedelta(days=8)) == []
    assert reminders_at(starts - timedelta(days=7, hours=-1)) == [(practice.id, "week")]
    assert reminders_at(starts - timedelta(days=7, hours=-2)) == []  # once, however often it runs
    assert reminders_at(starts - timedelta(days=5)) == []
    assert reminders_at(starts - timedelta(hours=23)) == [(practice.id, "day")]
    assert reminders_at(starts + timedelta(hours=1)) == [(practice.id, "today")]
    assert reminders_at(starts + timedelta(days=2)) == []
    assert len(_notices(outbox, "Reminder: multi-factor authentication is required from")) == 3 * 2
    assert _notices(outbox, "is now required") == ["admin@grace.test", "late@grace.test", "later@grace.test"]

    clock.current = starts - timedelta(minutes=10)
    live = app.test_client()
    live.post("/login", data={"email": "late@grace.test", "password": PASSWORD})
    assert live.get("/").status_code == 200
    clock.current = starts + timedelta(minutes=5)
    assert live.get("/").headers["Location"] == "/account/security"  # the live session is sent to enroll
    fresh = app.test_client()
    forced = fresh.post("/login", data={"email": "later@grace.test", "password": PASSWORD})
    assert forced.headers["Location"] == "/account/security"


def test_support_moves_the_date_and_cancels_each_change_audited_and_notified(app, clock, outbox):
    """Can support move the start and cancel it, with an audit event and a notice for each?"""
    support = _support(app, clock)
    practice = _practice()
    first = (clock.now() + timedelta(days=5)).date()
    assert _schedule(support, practice, first).status_code == 303
    assert len(_notices(outbox, "will require multi-factor authentication from")) == 3
    moved = first + timedelta(days=7)
    assert _schedule(support, practice, moved, reason="Their IT asked for a week more").status_code == 303
    assert len(_notices(outbox, f"from {moved:%Y-%m-%d}")) == 3
    cancel = change_confirmed(support, f"/support/practices/{practice.id}/requirement",
                              {"required": "off", "reason": "Paused"})
    assert cancel.status_code == 303
    db.session.expire_all()
    assert db.session.get(Practice, practice.id).mfa_required is False
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.event_type == "practice.requirement_changed")
                                .order_by(AuditEvent.id)).all()
    assert len(events) == 3
    assert f'"from":"{first:%Y-%m-%d} 00:00 UTC"' in events[0].detail
    assert f'"previous_from":"{first:%Y-%m-%d} 00:00 UTC"' in events[1].detail
    assert '"required":false' in events[2].detail
    assert len(_notices(outbox, "will require multi-factor authentication from")) == 3 * 2
    assert _notices(outbox, "no longer requires") == ["admin@grace.test", "late@grace.test", "later@grace.test"]
    # A reminder for the cancelled date is never sent.
    clock.current = requirement.start_of_day(moved) - timedelta(hours=12)
    assert requirement.send_due_reminders(clock.now()) == []


def test_a_start_beyond_thirty_days_or_without_a_date_is_refused(app, clock):
    """Are a start too far ahead, and "from a date" without one, refused with a clear message?"""
    support = _support(app, clock)
    practice = _practice()
    too_far = _schedule(support, practice, (clock.now() + timedelta(days=32)).date())
    assert too_far.status_code == 400 and "within the next thirty days" in too_far.get_data(as_text=True)
    no_date = support.post(f"/support/practices/{practice.id}/requirement",
                           data={"required": "on", "when": "from", "starts_on": "", "reason": "x"})
    assert no_date.status_code == 400 and "Choose the start date." in no_date.get_data(as_text=True)
    not_a_date = _schedule(support, practice, type("D", (), {"isoformat": lambda self: "31/02/2027"})())
    assert not_a_date.status_code == 400
    db.session.expire_all()
    assert db.session.get(Practice, practice.id).mfa_required is False


def test_an_admin_asks_for_a_start_date_and_support_approves_it(app, clock, outbox):
    """Does an admin's request with a date become the practice's start date when approved?"""
    support = _support(app, clock)
    practice = _practice()
    admin = app.test_client()
    admin.post("/login", data={"email": "admin@grace.test", "password": PASSWORD})
    day = (clock.now() + timedelta(days=14)).date()
    sent = admin.post("/practice/requests", data={"starts_on": day.isoformat(), "note": "Two weeks please"})
    assert sent.status_code == 303
    assert f"from {day:%Y-%m-%d} 00:00 UTC" in admin.get("/practice/").get_data(as_text=True)
    request_id = db.session.scalar(select(User.id).where(User.email == "admin@grace.test"))  # noqa: F841
    from portal.models import RequirementRequest

    req = db.session.scalar(select(RequirementRequest))
    decided = change_confirmed(support, f"/support/requests/{req.id}/decide",
                               {"note": "Approved", "approve": "Approve"})
    assert decided.status_code == 303
    db.session.expire_all()
    practice = db.session.get(Practice, practice.id)
    assert practice.mfa_required and practice.mfa_required_from == requirement.start_of_day(day)
    assert len(_notices(outbox, "will require")) == 3
