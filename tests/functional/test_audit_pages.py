"""Support's audit trail and the practice admin's security events, read as a person would.

Plain labels and sentences instead of codes and JSON; filters by name or email and by practice
name (resolved to ids first, never widening a practice admin's scope); the password step of a
completed Log In folded under it by default, every step on request; bad filter input answered
with a message, never a 500. The words themselves are unit-tested in
tests/unit/test_audit_labels.py.
"""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from html.parser import HTMLParser

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select

from portal import audit
from portal.audit import EVENT_TYPES
from portal.extensions import db
from portal.models import AuditEvent, User
from tests.factories import PASSWORD, make_enrollment, make_practice, make_user
from tests.functional.mfa_helpers import totp_now
from tests.functional.practice_review_helpers import login_admin, text_of

SUPPORT_AUDIT = "/support/audit"
PRACTICE_AUDIT = "/practice/audit"


# --- reading the page ---------------------------------------------------------------------------

class _EventTable(HTMLParser):
    """Each top-level row of the events table: its id and the visible text of each cell."""

    def __init__(self):
        super().__init__()
        self.rows: list[tuple[int, list[str]]] = []
        self._depth = 0
        self._row = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id") == "audit-table":
            self._depth = 1
        elif self._depth and tag == "tr" and (attrs.get("id") or "").startswith("event-"):
            self._row = (int(attrs["id"].removeprefix("event-")), [])
        elif self._row is not None and tag == "td":
            self._cell = []
        elif self._cell is not None and tag == "br":
            self._cell.append(" ")

    def handle_endtag(self, tag):
        if tag == "table":
            self._depth = 0
        elif tag == "td" and self._cell is not None:
            self._row[1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def event_rows(html: str) -> dict[int, list[str]]:
    """{event id: [time, event, actor, subject, (practice,) address, detail, sealed]} of the rows shown."""
    reader = _EventTable()
    reader.feed(html)
    return dict(reader.rows)


def visible_text(html: str) -> str:
    """What a person reads on the page: no tags, no attribute values."""
    body = html.split("<main", 1)[1]
    return unescape(" ".join(re.sub(r"<[^>]+>", " ", body).split()))


def events_of(event_type: str, subject: User | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.event_type == event_type).order_by(AuditEvent.id)
    if subject is not None:
        query = query.where(AuditEvent.subject_id == subject.id)
    return list(db.session.scalars(query))


def older_link(html: str) -> str | None:
    match = re.search(r'<a rel="next" href="([^"]+)"', html)
    return match.group(1).replace("&amp;", "&") if match else None


# --- fixtures -------------------------------------------------------------------------------

@pytest.fixture
def support(app, client, auth, clock):
    """Sasha from support, logged in with an authenticator code and confirmed for the support area."""
    user = make_user("sasha@portal.test", role="support", display_name="Sasha Support")
    secret = make_enrollment(user, "totp")
    assert auth.login_totp("sasha@portal.test", PASSWORD, secret).status_code == 303
    clock.advance(seconds=30)
    response = client.post("/support/confirm", data={"password": PASSWORD, "code": totp_now(secret, clock)})
    assert response.status_code == 303
    return user


@pytest.fixture
def oak():
    """Oak Clinic: Casey Jones (SMS) and Dan Rivers (no MFA); and Elm Surgery with Cass Elm."""
    practice = make_practice("Oak Clinic")
    casey = make_user("casey@oak.test", practice=practice, display_name="Casey Jones")
    make_enrollment(casey, "sms")
    dan = make_user("dan@oak.test", practice=practice, display_name="Dan Rivers")
    elm = make_practice("Elm Surgery")
    cass = make_user("cass@elm.test", practice=elm, display_name="Cass Elm")
    return practice, casey, dan, elm, cass


# --- labels and sentences ----------------------------------------------------------------------

def test_support_reads_labels_and_sentences_not_codes(client, support, oak, clock):
    """Does support read "MFA cleared by support" with "Reason: lost phone · Ticket: SUP-1042", never codes or JSON?"""
    _, casey, dan, _, _ = oak
    audit.record("mfa.code_sent", subject=casey, detail={"channel": "sms", "destination": "***-***-0143",
                                                         "purpose": "login"})
    audit.record("mfa.code_sent", subject=dan, detail={"channel": "email", "destination": "d***@oak.test",
                                                       "purpose": "enroll"})
    audit.record("mfa.cleared", actor=support, subject=casey,
                 detail={"previous_method": "sms", "reason": "lost phone", "ticket": "SUP-1042"})
    db.session.commit()
    html = client.get(SUPPORT_AUDIT).get_data(as_text=True)
    rows = event_rows(html)
    cleared = rows[events_of("mfa.cleared")[0].id]
    assert cleared[1] == "MFA cleared by support"
    assert cleared[2] == "Sasha Support sasha@portal.test" and cleared[3] == "Casey Jones casey@oak.test"
    assert cleared[4] == "Oak Clinic"
    assert cleared[6] == "Before: SMS · Reason: lost phone · Ticket: SUP-1042"
    sent = {row[1]: row[6] for row in rows.values() if row[1].startswith("Code sent")}
    assert sent == {"Code sent by text": "To: ***-***-0143 · For: Log In",
                    "Code sent by email": "To: d***@oak.test · For: setting up MFA"}
    # Support's own Log In and confirmation, from the fixture, also read plainly.
    labels = {row[1] for row in rows.values()}
    assert {"Support access confirmed", "Code accepted"} <= labels
    assert any(label.startswith("Logged in") for label in labels)
    text = visible_text(html)
    for code in EVENT_TYPES:
        assert code not in text, code
    assert "{" not in text and '"ticket"' not in html and "previous_method" not in html
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", cleared[0])  # portal.wording.format_time


def test_the_event_filter_offers_labels_and_filters_by_them(client, support, oak):
    """Does the Event select list labels (not codes) for every event type, and filter by the chosen one?"""
    _, casey, _, _, _ = oak
    audit.record("mfa.cleared", actor=support, subject=casey, detail={"reason": "lost phone", "ticket": "T-1"},
                 commit=True)
    html = client.get(SUPPORT_AUDIT).get_data(as_text=True)
    select_html = re.search(r'<select id="event_type".*?</select>', html, re.S).group(0)
    options = dict(re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select_html))
    assert set(options) == {"", *EVENT_TYPES}
    assert options["mfa.cleared"] == "MFA cleared by support" and options["login.succeeded"] == "Logged in"
    assert all(code not in words for code, words in options.items() if code)
    filtered = client.get(SUPPORT_AUDIT, query_string={"event_type": "mfa.cleared"}).get_data(as_text=True)
    assert [row[1] for row in event_rows(filtered).values()] == ["MFA cleared by support"]
    assert '<option value="mfa.cleared" selected>' in filtered


def test_the_table_is_in_a_named_scrolling_region(client, support):
    """Is the table inside the labelled, focusable region that scrolls on its own on a phone?"""
    html = client.get(SUPPORT_AUDIT).get_data(as_text=True)
    assert re.search(r'<div class="table-scroll" role="region" aria-label="Security events" tabindex="0">\s*'
                     r'<table id="audit-table"', html)


# --- filters by name, email and practice name --------------------------------------------------

def test_support_filters_by_part_of_a_name_or_email_in_any_case(client, support, oak):
    """Does "CASEY" or "sey@oa" find Casey's events (as actor or subject) and nobody else's?"""
    _, casey, dan, _, cass = oak
    for user in (casey, dan, cass):
        audit.record("password_reset.requested", subject=user)
    audit.record("invitation.sent", actor=casey, practice_id=casey.practice_id,
                 detail={"email": "new@oak.test", "role": "clinician"})
    db.session.commit()
    for typed in ("CASEY", "sey@OA", "jones"):
        html = client.get(SUPPORT_AUDIT, query_string={"who": typed}).get_data(as_text=True)
        rows = event_rows(html).values()
        assert sorted(row[1] for row in rows) == ["Invitation sent", "Password reset requested"], typed
        assert all("casey@oak.test" in row[2] + row[3] for row in rows)
        assert text_of(html, "audit-matches") == "Showing events of Casey Jones (casey@oak.test)."
        assert f'value="{typed}"' in html  # the box keeps what was typed
    # "cas" stands for Casey and Cass (Elm Surgery): both people's events, named above the table.
    html = client.get(SUPPORT_AUDIT, query_string={"who": "cas", "event_type": "password_reset.requested"})
    html = html.get_data(as_text=True)
    assert sorted(row[3] for row in event_rows(html).values()) == ["Casey Jones casey@oak.test",
                                                                    "Cass Elm cass@elm.test"]


def test_an_exact_email_names_that_person_alone(client, support, oak):
    """Does the full email casey@oak.test find Casey only, not mccasey@oak.test who contains it?"""
    practice, casey, _, _, _ = oak
    mccasey = make_user("mccasey@oak.test", practice=practice, display_name="Morgan McCasey")
    for user in (casey, mccasey):
        audit.record("password_reset.requested", subject=user)
    db.session.commit()
    html = client.get(SUPPORT_AUDIT, query_string={"who": "Casey@Oak.test"}).get_data(as_text=True)
    assert [row[3] for row in event_rows(html).values()] == ["Casey Jones casey@oak.test"]
    both = client.get(SUPPORT_AUDIT, query_string={"who": "casey@"}).get_data(as_text=True)
    assert len(event_rows(both)) == 2


def test_like_wildcards_are_read_as_the_characters_typed(client, support, oak):
    """Do "%" and "_" match themselves, so they never stand for everyone?"""
    for typed in ("%", "_", "\\"):
        html = client.get(SUPPORT_AUDIT, query_string={"who": typed}).get_data(as_text=True)
        assert event_rows(html) == {}, typed
        assert f"No one has a name or email containing “{typed}”." in visible_text(html)


def test_support_filters_by_practice_name(client, support, oak):
    """Does "oak" (any case, part of the name) show Oak Clinic's events only; a name nobody has, none?"""
    _, casey, dan, _, cass = oak
    for user in (casey, dan, cass):
        audit.record("password_reset.requested", subject=user)
    db.session.commit()
    html = client.get(SUPPORT_AUDIT, query_string={"practice_name": "OAK"}).get_data(as_text=True)
    rows = event_rows(html).values()
    assert sorted(row[3] for row in rows) == ["Casey Jones casey@oak.test", "Dan Rivers dan@oak.test"]
    assert {row[4] for row in rows} == {"Oak Clinic"}
    assert text_of(html, "audit-matches") == "Showing events of Oak Clinic."
    # With a name as well: both filters at once.
    html = client.get(SUPPORT_AUDIT, query_string={"practice_name": "oak", "who": "dan"}).get_data(as_text=True)
    assert [row[3] for row in event_rows(html).values()] == ["Dan Rivers dan@oak.test"]
    assert text_of(html, "audit-matches") == "Showing events of Dan Rivers (dan@oak.test) in Oak Clinic."
    nothing = client.get(SUPPORT_AUDIT, query_string={"practice_name": "Willow"}).get_data(as_text=True)
    assert event_rows(nothing) == {} and "No practice has a name containing “Willow”." in visible_text(nothing)


def test_the_support_pages_links_still_name_one_user_or_practice(client, support, oak):
    """Do the "security events" links from a user's or practice's page show just theirs, the box filled in?"""
    _, casey, dan, elm, cass = oak
    for user in (casey, dan, cass):
        audit.record("password_reset.requested", subject=user)
    db.session.commit()
    html = client.get(SUPPORT_AUDIT, query_string={"user": dan.id}).get_data(as_text=True)
    assert [row[3] for row in event_rows(html).values()] == ["Dan Rivers dan@oak.test"]
    assert 'id="who" name="who" type="search" maxlength="254" value="dan@oak.test"' in html
    html = client.get(SUPPORT_AUDIT, query_string={"practice": elm.id}).get_data(as_text=True)
    assert [row[3] for row in event_rows(html).values()] == ["Cass Elm cass@elm.test"]
    assert 'value="Elm Surgery"' in html


def test_filters_stay_with_the_pager(client, support, oak, clock):
    """Do "Older events" pages keep the name and event filters, and never repeat a row?"""
    _, casey, dan, _, _ = oak
    for _ in range(60):
        clock.advance(seconds=1)
        audit.record("password_reset.requested", subject=casey, now=clock.now())
        audit.record("password_reset.requested", subject=dan, now=clock.now())
        audit.record("logout", actor=casey, subject=casey, now=clock.now())
    db.session.commit()
    query = {"who": "casey", "event_type": "password_reset.requested"}
    first = client.get(SUPPORT_AUDIT, query_string=query).get_data(as_text=True)
    link = older_link(first)
    assert "who=casey" in link and "event_type=password_reset.requested" in link
    second = client.get(link).get_data(as_text=True)
    assert older_link(second) is None
    seen = list(event_rows(first)) + list(event_rows(second))
    assert len(seen) == len(set(seen)) == 60
    assert {row[3] for row in [*event_rows(first).values(), *event_rows(second).values()]} == {
        "Casey Jones casey@oak.test"}


# --- a practice admin's scope --------------------------------------------------------------------

def test_no_filter_reaches_another_practice(client, auth, alder, other_practice):
    """Can Alder's admin reach Birch's events by name, email, practice name or a link's id? (They cannot.)"""
    bob = db.session.scalar(select(User).where(User.email == "bob@birch.test"))
    bella = db.session.scalar(select(User).where(User.email == "bella@birch.test"))
    finn = db.session.scalar(select(User).where(User.email == "finn@alder.test"))
    for user in (bob, bella, finn):
        audit.record("password_reset.requested", subject=user)
    audit.record("invitation.sent", actor=bob, practice_id=other_practice.id, detail={"email": "x@birch.test",
                                                                                       "role": "staff"})
    db.session.commit()
    admin = login_admin(auth, alder)
    for query in ({"who": "bob"}, {"who": "bob@birch.test"}, {"who": "birch"}, {"who": "b"},
                  {"user": bob.id}, {"practice": other_practice.id}, {"practice_name": "Birch Surgery"},
                  {"practice": other_practice.id, "who": "bella"}, {"steps": "all", "who": "bella@birch.test"}):
        response = client.get(PRACTICE_AUDIT, query_string=query)
        assert response.status_code == 200, query
        html = response.get_data(as_text=True)
        shown = " ".join(" ".join(row) for row in event_rows(html).values())
        if 'id="audit-matches"' in html:
            shown += text_of(html, "audit-matches")
        for leaked in ("birch.test", "Birch", "Bob", "Bella", "Bart"):
            assert leaked not in shown, (query, leaked)
        if query.get("who", "").startswith(("bob", "birch")):
            assert "No one in your practice has a name or email containing" in visible_text(html)
        assert all(event.practice_id == alder.id for event in db.session.scalars(
            select(AuditEvent).where(AuditEvent.id.in_(list(event_rows(html))))))
    html = client.get(PRACTICE_AUDIT, query_string={"who": "FINN"}).get_data(as_text=True)
    assert [row[1] for row in event_rows(html).values()] == ["Password reset requested"]
    assert "Practice" not in [cell for cell in re.findall(r'<th scope="col"[^>]*>([^<]*)</th>', html)]
    assert 'name="practice_name"' not in html
    assert admin.id


def test_a_broad_name_does_not_tell_an_admin_about_other_practices(client, auth, alder, other_practice):
    """Does "member", matching sixty of Birch's people, read as no one in Alder rather than "more than 50"?"""
    for number in range(60):
        make_user(f"member{number}@birch.test", practice=other_practice, display_name=f"Member {number}")
    login_admin(auth, alder)
    html = client.get(PRACTICE_AUDIT, query_string={"who": "member"}).get_data(as_text=True)
    text = visible_text(html)
    assert "No one in your practice has a name or email containing “member”." in text
    assert "More than" not in text and event_rows(html) == {}


def test_a_practice_admin_finds_support_acting_on_their_people(client, auth, alder):
    """Can Alder's admin find the event where support cleared a member's MFA by typing support's name?"""
    sasha = make_user("sasha@portal.test", role="support", display_name="Sasha Support")
    ben = db.session.scalar(select(User).where(User.email == "ben@alder.test"))
    audit.record("mfa.cleared", actor=sasha, subject=ben,
                 detail={"previous_method": "totp", "reason": "lost phone", "ticket": "SUP-1042"}, commit=True)
    login_admin(auth, alder)
    html = client.get(PRACTICE_AUDIT, query_string={"who": "sasha"}).get_data(as_text=True)
    rows = list(event_rows(html).values())
    assert len(rows) == 1
    assert rows[0][1:4] == ["MFA cleared by support", "Sasha Support sasha@portal.test", "Ben Totp ben@alder.test"]
    assert rows[0][5] == "Before: Authenticator Apps · Reason: lost phone · Ticket: SUP-1042"


# --- the password step folded under its Log In ---------------------------------------------------

def _log_ins(auth, clock, alder):
    """Finn logs in (no MFA); Ben with his app; Eve types a wrong password; Dan stops at the code step."""
    ben = db.session.scalar(select(User).where(User.email == "ben@alder.test"))
    ben_secret = make_enrollment_secret(ben)
    assert auth.login("finn@alder.test", PASSWORD).status_code == 303
    auth.logout()
    clock.advance(seconds=31)
    assert auth.login_totp("ben@alder.test", PASSWORD, ben_secret).status_code == 303
    auth.logout()
    auth.login("eve@alder.test", "not the right password")
    auth.login("dan@alder.test", PASSWORD)
    auth.logout()


def make_enrollment_secret(user):
    """Replace the user's method with an app whose secret the test knows."""
    from portal.models import MfaEnrollment

    db.session.delete(db.session.scalar(select(MfaEnrollment).where(MfaEnrollment.user_id == user.id)))
    db.session.commit()
    return make_enrollment(user, "totp")


def test_password_steps_fold_under_their_log_in_by_default(client, auth, alder, clock):
    """Is each completed Log In's password step inside its "Logged in" row, while a wrong password and an
    unfinished Log In stay rows of their own?"""
    _log_ins(auth, clock, alder)
    login_admin(auth, alder)
    finn = db.session.scalar(select(User).where(User.email == "finn@alder.test"))
    ben = db.session.scalar(select(User).where(User.email == "ben@alder.test"))
    dan = db.session.scalar(select(User).where(User.email == "dan@alder.test"))
    html = client.get(PRACTICE_AUDIT).get_data(as_text=True)
    rows = event_rows(html)
    for user in (finn, ben):
        (step,), (logged_in,) = events_of("login.password_succeeded", user), events_of("login.succeeded", user)
        assert step.id not in rows and logged_in.id in rows
        cell = rows[logged_in.id][1]
        assert cell.startswith("Logged in Password accepted ·") and ("Sealed #" in cell or "Not yet sealed" in cell)
        row_html = html.split(f'<tr id="event-{logged_in.id}">')[1].split("</tr>")[0]
        assert "<details" in row_html and "<summary>Logged in</summary>" in row_html
        assert f'<li id="event-{step.id}">' in row_html
    assert rows[events_of("login.succeeded", finn)[0].id][5] == "Method: password only (no MFA)"
    assert rows[events_of("login.succeeded", ben)[0].id][5] == "Method: Authenticator Apps"
    refused = events_of("login.password_failed")
    assert refused and all(rows[event.id][1] == "Password refused" for event in refused)
    (unfinished,) = events_of("login.password_succeeded", dan)
    assert rows[unfinished.id][1] == "Password accepted"
    assert "Show every step" in text_of(html, "audit-steps")


def test_every_step_is_a_row_on_request(client, auth, alder, clock):
    """With "Show every step", is every event of the practice a row of its own, none inside another?"""
    _log_ins(auth, clock, alder)
    login_admin(auth, alder)
    html = client.get(PRACTICE_AUDIT).get_data(as_text=True)
    link = re.search(r'<a href="([^"]+)">Show every step</a>', html).group(1).replace("&amp;", "&")
    every = client.get(link).get_data(as_text=True)
    rows = event_rows(every)
    alder_events = {event.id for event in db.session.scalars(
        select(AuditEvent).where(AuditEvent.practice_id == alder.id))}
    assert set(rows) == alder_events
    assert "<details" not in every.split('id="audit-table"')[1]
    assert sum(row[1] == "Password accepted" for row in rows.values()) == 4  # Finn, Ben, Dan, the admin
    back = re.search(r'<a href="([^"]+)">Fold password steps into their Log In</a>', every)
    assert back and "steps" not in back.group(1)
    # The choice stays with the other filters.
    filtered = client.get(PRACTICE_AUDIT, query_string={"steps": "all", "who": "finn"}).get_data(as_text=True)
    assert 'name="steps" value="all"' in filtered
    assert sorted(row[1] for row in event_rows(filtered).values()) == ["Logged in", "Logged out", "Password accepted"]


def test_a_log_in_and_its_password_step_on_different_pages(client, support, oak, clock):
    """When fifty other events fall between a password step and its Log In, is the step still inside the
    Log In's row on page one, and not a row on page two?"""
    _, casey, dan, _, _ = oak
    audit.record("login.password_succeeded", actor=casey, subject=casey, now=clock.now())
    for _ in range(55):
        audit.record("password_reset.requested", subject=dan, now=clock.now())
    clock.advance(seconds=40)
    audit.record("login.succeeded", actor=casey, subject=casey, now=clock.now(), detail={"method": "sms"})
    db.session.commit()
    (step,), (logged_in,) = events_of("login.password_succeeded", casey), events_of("login.succeeded", casey)
    first = client.get(SUPPORT_AUDIT, query_string={"practice_name": "oak"}).get_data(as_text=True)
    assert logged_in.id in event_rows(first) and f'<li id="event-{step.id}">' in first
    second = client.get(older_link(first)).get_data(as_text=True)
    assert step.id not in event_rows(second) and f'id="event-{step.id}"' not in second
    every = client.get(SUPPORT_AUDIT, query_string={"practice_name": "oak", "steps": "all"}).get_data(as_text=True)
    every_second = client.get(older_link(every)).get_data(as_text=True)
    assert step.id in event_rows(every_second)


def test_a_password_step_long_before_a_log_in_is_not_folded(client, support, oak, clock, app):
    """Is a password step followed by a Log In only after the code step's lifetime (or after another password
    step) left as a row of its own?"""
    _, casey, dan, _, _ = oak
    audit.record("login.password_succeeded", actor=casey, subject=casey, now=clock.now())
    clock.advance(seconds=app.config["MFA_PENDING_LOGIN_TTL"].total_seconds() + 1)
    audit.record("login.succeeded", actor=casey, subject=casey, now=clock.now(), detail={"method": "sms"})
    audit.record("login.password_succeeded", actor=dan, subject=dan, now=clock.now())
    clock.advance(seconds=5)
    audit.record("login.password_succeeded", actor=dan, subject=dan, now=clock.now())
    clock.advance(seconds=5)
    audit.record("login.succeeded", actor=dan, subject=dan, now=clock.now(), detail={"method": None})
    db.session.commit()
    rows = event_rows(client.get(SUPPORT_AUDIT, query_string={"practice_name": "oak"}).get_data(as_text=True))
    late, = events_of("login.password_succeeded", casey)
    assert late.id in rows and rows[events_of("login.succeeded", casey)[0].id][1] == "Logged in"
    abandoned, completed = events_of("login.password_succeeded", dan)
    assert abandoned.id in rows and completed.id not in rows
    assert rows[events_of("login.succeeded", dan)[0].id][1].startswith("Logged in Password accepted")


def test_a_step_whose_log_in_is_past_the_to_date_stays_a_row(client, support, oak, clock):
    """If the "To" date ends between a password step and its Log In, is the step shown as a row?"""
    _, casey, _, _, _ = oak
    start = clock.now().replace(hour=23, minute=59, second=50)
    audit.record("login.password_succeeded", actor=casey, subject=casey, now=start)
    audit.record("login.succeeded", actor=casey, subject=casey, now=start + timedelta(seconds=20),
                 detail={"method": "sms"})
    db.session.commit()
    (step,) = events_of("login.password_succeeded", casey)
    html = client.get(SUPPORT_AUDIT, query_string={"who": "casey", "to": start.date().isoformat()})
    rows = event_rows(html.get_data(as_text=True))
    assert list(rows) == [step.id] and rows[step.id][1] == "Password accepted"


def test_filtering_on_the_password_step_shows_every_one(client, auth, alder, clock):
    """With the event filter on "Password accepted", is every password step a row (none folded away)?"""
    _log_ins(auth, clock, alder)
    login_admin(auth, alder)
    html = client.get(PRACTICE_AUDIT, query_string={"event_type": "login.password_succeeded"}).get_data(as_text=True)
    assert len(event_rows(html)) == 4


# --- input that cannot be used --------------------------------------------------------------------

@pytest.mark.parametrize("query, message", [
    ({"who": "x" * 255}, "“Name or email” is longer than 254 characters, so it was left out."),
    ({"who": "ca\x01sey"}, "“Name or email” holds characters no name has, so it was left out."),
    ({"practice_name": "o" * 300}, "“Practice” is longer than 254 characters, so it was left out."),
    ({"from": "2026-13-45"}, "“From” must be a date such as 2026-12-01, so it was left out."),
    ({"to": "yesterday"}, "“To” must be a date such as 2026-12-01, so it was left out."),
    ({"from": "2026-12-02", "to": "2026-12-01"},
     "“From” is after “To”, so no event can match: the dates were left out."),
    ({"event_type": "<script>"}, "That kind of event does not exist, so every kind is shown."),
    ({"user": "abc"}, "A link's filter was not understood, so it was left out."),
    ({"practice": 2**40}, "A link's filter was not understood, so it was left out."),
    ({"before": "-1"}, "A link's filter was not understood, so it was left out."),
    ({"user": 2**31 - 1}, "No one matches that link, so no event is shown."),
    ({"practice": 2**31 - 1}, "No practice matches that link, so no event is shown."),
])
def test_bad_filter_input_is_left_out_with_a_message(client, support, query, message):
    """Does unusable filter input get the page (200), a message saying what was left out, and no 500?"""
    response = client.get(SUPPORT_AUDIT, query_string=query)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert message in unescape(text_of(html, "audit-filter-notes"))


def test_bad_filter_input_on_the_security_events_page(client, alder_admin):
    """Does the practice admin's page answer made-up filters with a message, never a 500, never another practice?"""
    for query in ({"who": "\x00"}, {"who": "y" * 1000}, {"from": "2020-02-30"}, {"user": "-5"}, {"before": 2**63},
                  {"practice": "1", "practice_name": "anything"}, {"steps": "<b>"}, {"event_type": ["a", "b"]}):
        response = client.get(PRACTICE_AUDIT, query_string=query)
        assert response.status_code == 200, query
    html = client.get(PRACTICE_AUDIT, query_string={"from": "2020-02-30"}).get_data(as_text=True)
    assert "“From” must be a date" in text_of(html, "audit-filter-notes")


# --- cost ----------------------------------------------------------------------------------------

class Statements:
    def __init__(self, app):
        with app.app_context():
            self.engine = db.engine
        self.seen: list[str] = []
        sa_event.listen(self.engine, "before_cursor_execute", self._listen)

    def _listen(self, conn, cursor, statement, parameters, context, executemany):
        self.seen.append(statement)

    def count(self, client, path, query) -> int:
        self.seen = []
        response = client.get(path, query_string=query)
        response.get_data()
        assert response.status_code == 200
        return len(self.seen)

    def close(self):
        sa_event.remove(self.engine, "before_cursor_execute", self._listen)


def test_folding_and_name_filters_cost_the_same_for_few_and_many_log_ins(client, support, oak, clock):
    """Does the page cost as many statements with 60 Log Ins to fold as with 2, folding on or off, filtered by
    name and practice or not?"""
    client.application.session_interface.cleanup_n_requests = 0
    _, casey, dan, _, _ = oak
    statements = Statements(client.application)
    queries = [{}, {"steps": "all"}, {"who": "casey"}, {"practice_name": "oak"},
               {"who": "casey", "practice_name": "oak"}]

    def log_ins(count):
        for _ in range(count):
            for user in (casey, dan):
                clock.advance(seconds=1)
                audit.record("login.password_succeeded", actor=user, subject=user, now=clock.now())
                audit.record("mfa.code_sent", subject=user, now=clock.now(), detail={"channel": "sms"})
                audit.record("login.succeeded", actor=user, subject=user, now=clock.now(), detail={"method": "sms"})
        db.session.commit()

    try:
        log_ins(1)
        client.get(SUPPORT_AUDIT)  # the session's last-seen time, written once a minute, is not the page's cost
        few = [statements.count(client, SUPPORT_AUDIT, query) for query in queries]
        log_ins(30)
        client.get(SUPPORT_AUDIT)
        many = [statements.count(client, SUPPORT_AUDIT, query) for query in queries]
    finally:
        statements.close()
    assert few == many, statements.seen
    plain, every, who, practice, both = many
    assert every == plain and who == plain + 1 and practice == plain + 1 and both == plain + 2
