"""Actions with wide effects (issue 15, item 10): each is marked as dangerous and says what it
will do before it happens; a practice-wide change (support's switch, approving an admin's
request) happens only when its confirmation, bound to the numbers shown, is posted."""

from __future__ import annotations

import html as html_text
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal.enforcement import requirement
from portal.extensions import db
from portal.models import AuditEvent, LostAccessRequest, MfaEnrollment, Practice, RequirementRequest
from tests.factories import PASSWORD, make_enrollment, make_practice, make_user
from tests.functional.mfa_helpers import totp_now
from tests.functional.parallel import POOL, THREADS, clones, fire
from tests.functional.support_helpers import change_confirmed, confirmation


def _support(app, clock):
    """A support user's browser on `app`: logged in with the authenticator, confirmed for support work."""
    client = app.test_client()
    user = make_user(f"support{next(_n)}@portal.test", role="support", display_name="Sasha Support")
    secret = make_enrollment(user, "totp")
    client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert client.post("/login/code", data={"code": totp_now(secret, clock)}).status_code == 303
    clock.advance(seconds=30)
    confirmed = client.post("/support/confirm", data={"password": PASSWORD, "code": totp_now(secret, clock)})
    assert confirmed.status_code == 303
    return client


_n = iter(range(1, 1_000_000))


@pytest.fixture
def maple():
    """Maple Surgery: four active users, two of them without MFA; an inactive user and another
    practice's people, who must not be counted."""
    practice = make_practice("Maple Surgery")
    make_user("una@maple.test", practice=practice, display_name="Una Unset")
    make_user("vic@maple.test", practice=practice, display_name="Vic Vacant")
    for email, name, method in (("wes@maple.test", "Wes Ready", "email"), ("xia@maple.test", "Xia Ready", "totp")):
        make_enrollment(make_user(email, practice=practice, display_name=name), method)
    make_user("gone@maple.test", practice=practice, active=False)
    other = make_practice("Oak Clinic")
    make_user("oak@oak.test", practice=other)
    return practice


def _url(practice):
    return f"/support/practices/{practice.id}/requirement"


def _state(practice):
    db.session.expire_all()
    fresh = db.session.get(Practice, practice.id)
    return fresh.mfa_required, fresh.mfa_required_from


def _changes():
    return db.session.scalar(select(func.count(AuditEvent.id))
                             .where(AuditEvent.event_type == "practice.requirement_changed"))


def _text(response) -> str:
    """The page's words, tags removed, spaces folded."""
    return re.sub(r"\s+", " ", html_text.unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))))


def test_requiring_mfa_shows_who_it_reaches_and_changes_nothing_until_confirmed(app, clock, maple, outbox):
    """Does "Require MFA" first say "4 users; 2 will have to set up MFA at their next Log In",
    marked as dangerous, with nothing changed, sent or audited until Confirm?"""
    support = _support(app, clock)
    first = support.post(_url(maple), data={"required": "on", "when": "now", "reason": "Board decision"})
    assert first.status_code == 200
    words = _text(first)
    assert "Confirm: Require MFA for everyone in Maple Surgery, starting now." in words
    assert ("Warning: 4 users; 2 will have to set up MFA at their next Log In "
            "(anyone logged in now, at their next click). They are emailed now.") in words
    assert "Your reason (kept in the audit trail): Board decision" in words
    html = first.get_data(as_text=True)
    assert re.search(r'<button type="submit" class="button danger" aria-describedby="requirement-effect">Confirm'
                     r'</button>', html)
    assert 'id="requirement-effect"' in html
    assert _state(maple) == (False, None) and _changes() == 0
    assert outbox.messages(channel="email") == []

    action, fields = confirmation(html)
    done = support.post(action, data=fields)
    assert done.status_code == 303
    assert _state(maple) == (True, None) and _changes() == 1
    flashed = _text(support.get(done.headers["Location"]))
    assert "MFA is now required for Maple Surgery. 2 user(s) without MFA will be emailed." in flashed
    notified = sorted(m.recipient for m in outbox.messages(channel="email") if "now requires" in (m.subject or ""))
    assert notified == ["una@maple.test", "vic@maple.test"]


def test_the_same_steps_as_htmx_fragments(app, clock, maple):
    """With HTMX, is the preview a fragment for the requirement panel, and Confirm a redirect?"""
    support = _support(app, clock)
    htmx = {"HX-Request": "true", "HX-Target": "requirement-panel"}
    first = support.post(_url(maple), data={"required": "on", "reason": "Board decision"}, headers=htmx)
    assert first.status_code == 200
    html = first.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="requirement-panel">') and "<html" not in html
    assert "4 users; 2 will have to set up MFA" in html
    action, fields = confirmation(html)
    done = support.post(action, data=fields, headers=htmx)
    assert done.status_code == 204 and done.headers["HX-Redirect"] == f"/support/practices/{maple.id}"
    assert _state(maple) == (True, None)

    stop = support.post(_url(maple), data={"required": "off", "reason": "Pilot over"}, headers=htmx)
    assert stop.status_code == 200
    assert "4 users; the 2 without MFA are emailed that it is no longer required; the 2 with MFA keep it." \
        in _text(stop)
    assert _state(maple) == (True, None)


def test_a_start_date_and_stopping_say_what_they_do(app, clock, maple):
    """Do a start date (with the reminders still to come) and stopping each get their own sentence?"""
    support = _support(app, clock)
    day = (clock.now() + timedelta(days=10)).date()
    starts = f"{day:%Y-%m-%d} 00:00 UTC"
    later = _text(support.post(_url(maple), data={"required": "on", "when": "from", "starts_on": day.isoformat(),
                                                  "reason": "Two weeks' notice"}))
    assert f"Confirm: Require MFA for everyone in Maple Surgery from {starts}." in later
    assert (f"4 users; 2 without MFA will have to set it up from {starts}. They are emailed now and reminded "
            "a week before, the day before and on the day.") in later

    soon = (clock.now() + timedelta(days=3)).date()
    close = _text(support.post(_url(maple), data={"required": "on", "when": "from", "starts_on": soon.isoformat(),
                                                  "reason": "Soon"}))
    assert "They are emailed now and reminded the day before and on the day." in close

    assert change_confirmed(support, _url(maple), {"required": "on", "when": "from", "starts_on": day.isoformat(),
                                                   "reason": "Two weeks' notice"}).status_code == 303
    moved = _text(support.post(_url(maple), data={"required": "on", "when": "from",
                                                  "starts_on": soon.isoformat(), "reason": "Sooner"}))
    assert f"Confirm: Move the start of Maple Surgery's requirement from {starts} to {soon:%Y-%m-%d} 00:00 UTC." \
        in moved
    cancel = _text(support.post(_url(maple), data={"required": "off", "reason": "Paused"}))
    assert f"Confirm: Cancel the requirement that Maple Surgery was to have from {starts}." in cancel
    assert "the 2 without MFA are emailed that it is no longer required" in cancel
    assert _changes() == 1


def test_a_direct_apply_without_the_confirmation_does_nothing(app, clock, maple):
    """A post that claims to confirm, with no token, a made-up one, or one for another change:
    is each answered with the preview again (409) and nothing changed?"""
    support = _support(app, clock)
    base = {"required": "on", "when": "now", "reason": "Board decision"}
    assert support.post(_url(maple), data={**base, "seen": ""}).status_code == 200  # just the preview
    forged = support.post(_url(maple), data={**base, "seen": "0" * 32})
    assert forged.status_code == 409
    assert "changed since you looked" in _text(forged) and "4 users; 2 will have to set up MFA" in _text(forged)
    for letters in ("é" * 32, "\uff10" * 32, "\u202e" + "0" * 31):  # beyond ASCII: full-width digits, a bidi mark
        beyond_ascii = support.post(_url(maple), data={**base, "seen": letters})
        assert beyond_ascii.status_code == 409 and "changed since you looked" in _text(beyond_ascii)
    too_long = support.post(_url(maple), data={**base, "seen": "f" * 65})
    assert too_long.status_code == 400

    _action, fields = confirmation(support.post(_url(maple), data=base).get_data(as_text=True))
    later = (clock.now() + timedelta(days=10)).date().isoformat()
    swapped = support.post(_url(maple), data={**fields, "when": "from", "starts_on": later})
    assert swapped.status_code == 409  # the token was for "now", not for a date
    stop_instead = support.post(_url(maple), data={**fields, "required": "off"})
    assert stop_instead.status_code == 400 and "already not required" in _text(stop_instead)
    assert _state(maple) == (False, None) and _changes() == 0


def test_numbers_that_changed_before_the_confirmation_are_shown_again(app, clock, maple, outbox):
    """If a user joins between the preview and Confirm, are the new numbers shown to confirm
    again rather than the change applied blindly?"""
    support = _support(app, clock)
    _action, fields = confirmation(support.post(_url(maple), data={"required": "on", "reason": "Board"})
                                   .get_data(as_text=True))
    make_user("yan@maple.test", practice=maple, display_name="Yan New")
    again = support.post(_url(maple), data=fields)
    assert again.status_code == 409
    words = _text(again)
    assert "The practice or its users changed since you looked" in words
    assert "5 users; 3 will have to set up MFA at their next Log In" in words
    assert _state(maple) == (False, None) and _changes() == 0
    _action, fresh = confirmation(again.get_data(as_text=True))
    assert support.post(_url(maple), data=fresh).status_code == 303
    assert _state(maple) == (True, None)
    assert len([m for m in outbox.messages(channel="email") if "now requires" in (m.subject or "")]) == 3


@pytest.mark.parametrize("data, message", [
    ({"required": "maybe", "reason": "x"}, "Choose whether MFA is to be required."),
    ({"reason": "x"}, "Choose whether MFA is to be required."),
    ({"required": "on", "reason": ""}, "Give a reason."),
    ({"required": "on", "when": "from", "starts_on": "", "reason": "x"}, "Choose the start date."),
    ({"required": "on", "when": "from", "starts_on": "2027-02-31", "reason": "x"}, "Not a valid date value."),
    ({"required": "on", "when": "later", "reason": "x"}, "Not a valid choice."),
    ({"required": "off", "reason": "x"}, "MFA is already not required for this practice."),
])
def test_wrong_or_missing_input_is_a_400_with_a_message(app, clock, maple, data, message):
    """Does each bad first (or confirming) post say what is wrong, with a 400 and nothing changed?"""
    support = _support(app, clock)
    for extra in ({}, {"seen": "0" * 32}):
        response = support.post(_url(maple), data={**data, **extra})
        assert response.status_code == 400, (data, extra)
        assert message in _text(response)
    too_far = (clock.now() + timedelta(days=45)).date().isoformat()
    far = support.post(_url(maple), data={"required": "on", "when": "from", "starts_on": too_far, "reason": "x"})
    assert far.status_code == 400 and "Choose a start within the next thirty days." in _text(far)
    yesterday = (clock.now() - timedelta(days=1)).date().isoformat()
    for day in (yesterday, "2020-01-01"):
        past = support.post(_url(maple), data={"required": "on", "when": "from", "starts_on": day, "reason": "x"})
        assert past.status_code == 400
        assert f"{day} has passed: choose today (to start now) or a later date." in _text(past)
    assert _state(maple) == (False, None) and _changes() == 0


def test_twenty_confirmations_at_once_make_one_change(make_app, app, clock, maple, outbox):
    """The same Confirm posted twenty times at once (a double click, many tabs): is the change
    made once, audited once, and each user without MFA emailed once?"""
    racing = make_app(SQLALCHEMY_ENGINE_OPTIONS=POOL, SESSION_REFRESH_EACH_REQUEST=False)
    support = _support(racing, clock)
    _action, fields = confirmation(support.post(_url(maple), data={"required": "on", "reason": "Board"})
                                   .get_data(as_text=True))
    tabs = clones(racing, support, THREADS)
    statuses = fire(THREADS, lambda i: tabs[i].post(_url(maple), data=fields).status_code)
    assert statuses.count(303) == 1, statuses
    assert set(statuses) <= {303, 400, 409}, statuses
    assert _state(maple) == (True, None) and _changes() == 1
    notified = sorted(m.recipient for m in outbox.messages(channel="email") if "now requires" in (m.subject or ""))
    assert notified == ["una@maple.test", "vic@maple.test"]


@pytest.fixture
def maple_request(maple, clock):
    admin = make_user("admin@maple.test", role="practice_admin", practice=maple, display_name="Ada Admin")
    make_enrollment(admin, "email")
    return requirement.make_request(admin, require=True, note="Our board wants it", now=clock.now())


def _request_status(req):
    db.session.expire_all()
    return db.session.get(RequirementRequest, req.id).status


def test_approving_a_request_shows_its_effect_first(app, clock, maple, maple_request):
    """Does Approve first show "5 users; 2 will have to set up MFA", the request still open,
    and Confirm approval then apply it? Does Decline need no confirmation?"""
    support = _support(app, clock)
    overview = support.get("/support/").get_data(as_text=True)
    assert re.search(r'class="button danger" aria-describedby="approve-next-\d+">Approve</button>', overview)
    url = f"/support/requests/{maple_request.id}/decide"
    first = support.post(url, data={"note": "Done, as discussed", "approve": "Approve"})
    assert first.status_code == 200
    words = _text(first)
    assert "Confirm approval: Require MFA for everyone in Maple Surgery, starting now." in words
    assert "Warning: 5 users; 2 will have to set up MFA at their next Log In" in words
    assert "Your note for the practice admin: Done, as discussed" in words
    assert _request_status(maple_request) == "pending" and _state(maple) == (False, None)

    htmx = {"HX-Request": "true", "HX-Target": f"request-{maple_request.id}"}
    fragment = support.post(url, data={"note": "Done, as discussed", "approve": "Approve"}, headers=htmx)
    opening = f'<article class="request" id="request-{maple_request.id}">'
    assert fragment.get_data(as_text=True).lstrip().startswith(opening)
    action, fields = confirmation(fragment.get_data(as_text=True))
    assert fields["approve"] == "Approve" and fields["note"] == "Done, as discussed"
    done = support.post(action, data=fields, headers=htmx)
    assert done.status_code == 204 and done.headers["HX-Redirect"] == "/support/"
    assert _request_status(maple_request) == "approved" and _state(maple) == (True, None)
    again = support.post(action, data=fields)
    assert again.status_code == 409 and "This request was already decided." in _text(again)


def test_a_request_is_approved_only_by_its_confirmation(app, clock, maple, maple_request):
    """Is an approval with a made-up token, or after the practice changed, shown again (409)?
    Is a decline made at once, and a missing note a 400 with a message?"""
    support = _support(app, clock)
    url = f"/support/requests/{maple_request.id}/decide"
    forged = support.post(url, data={"note": "ok", "approve": "Approve", "seen": "0" * 32})
    assert forged.status_code == 409 and "changed since you looked" in _text(forged)
    beyond_ascii = support.post(url, data={"note": "ok", "approve": "Approve", "seen": "bücher"})
    assert beyond_ascii.status_code == 409 and "changed since you looked" in _text(beyond_ascii)
    _action, fields = confirmation(support.post(url, data={"note": "ok", "approve": "Approve"})
                                   .get_data(as_text=True))
    make_enrollment(make_user("zed@maple.test", practice=maple), "email")
    moved = support.post(url, data=fields)
    assert moved.status_code == 409 and "6 users; 2 will have to set up MFA" in _text(moved)
    assert _request_status(maple_request) == "pending"
    no_note = support.post(url, data={"note": "", "approve": "Approve"})
    assert no_note.status_code == 400 and "Give a note for the practice admin." in _text(no_note)
    declined = support.post(url, data={"note": "Talk to your users first", "decline": "Decline"})
    assert declined.status_code == 303
    assert _request_status(maple_request) == "declined" and _state(maple) == (False, None)


def test_twenty_approvals_at_once_decide_once(make_app, app, clock, maple, maple_request, outbox):
    """Confirm approval posted twenty times at once: one decision, one change, one notice each?"""
    racing = make_app(SQLALCHEMY_ENGINE_OPTIONS=POOL, SESSION_REFRESH_EACH_REQUEST=False)
    support = _support(racing, clock)
    url = f"/support/requests/{maple_request.id}/decide"
    _action, fields = confirmation(support.post(url, data={"note": "ok", "approve": "Approve"})
                                   .get_data(as_text=True))
    tabs = clones(racing, support, THREADS)
    statuses = fire(THREADS, lambda i: tabs[i].post(url, data=fields).status_code)
    assert statuses.count(303) == 1, statuses
    assert set(statuses) <= {303, 409}, statuses
    assert _request_status(maple_request) == "approved" and _changes() == 1
    decided = db.session.scalar(select(func.count(AuditEvent.id))
                                .where(AuditEvent.event_type == "practice.request_decided"))
    assert decided == 1
    notified = sorted(m.recipient for m in outbox.messages(channel="email") if "now requires" in (m.subject or ""))
    assert notified == ["una@maple.test", "vic@maple.test"]


def test_clearing_mfa_says_it_ends_the_users_sessions_and_emails_them(app, clock, outbox):
    """Does the user page and the lost-access queue name the user and say what clearing does
    (and whether they must set MFA up again), and is that what happens?"""
    support = _support(app, clock)
    strict = make_practice("Strict Clinic", mfa_required=True)
    casey = make_user("casey@strict.test", practice=strict, display_name="Casey Doe")
    secret = make_enrollment(casey, "totp")
    relaxed = make_user("robin@relaxed.test", practice=make_practice("Relaxed Clinic"), display_name="Robin Roe")
    make_enrollment(relaxed, "email")

    page = support.get(f"/support/users/{casey.id}")
    words = _text(page)
    assert ("Warning: Clearing MFA ends Casey Doe's sessions and emails them. MFA is required of them, so they "
            "will have to set it up again at their next Log In.") in words
    assert re.search(r'class="button danger"[^>]*aria-describedby="clear-effect"', page.get_data(as_text=True)) \
        or re.search(r'aria-describedby="clear-effect"[^>]*class="button danger"', page.get_data(as_text=True))
    assert ("Clearing MFA ends Robin Roe's sessions and emails them. They can then log in with their password "
            "alone.") in _text(support.get(f"/support/users/{relaxed.id}"))

    db.session.add(LostAccessRequest(user_id=casey.id, status="open", created_at=clock.now()))
    db.session.commit()
    queue = _text(support.get("/support/"))
    assert "Warning: Clearing MFA ends Casey Doe's sessions and emails them." in queue

    # The words are true: Casey's open session ends and Casey is emailed.
    casey_browser = app.test_client()
    casey_browser.post("/login", data={"email": "casey@strict.test", "password": PASSWORD})
    assert casey_browser.post("/login/code", data={"code": totp_now(secret, clock)}).status_code == 303
    assert casey_browser.get("/").status_code == 200
    request_id = db.session.scalar(select(LostAccessRequest.id))
    cleared = support.post(f"/support/lost-access/{request_id}/clear", data={"reason": "Lost phone", "ticket": "S-1"})
    assert cleared.status_code == 303
    assert casey_browser.get("/").status_code == 303
    assert [m.subject for m in outbox.messages("casey@strict.test", "email")] == [
        "Your multi-factor authentication was cleared"]
    assert db.session.scalar(select(func.count(MfaEnrollment.id)).where(MfaEnrollment.user_id == casey.id)) == 0
