"""Can an attacker tell accounts apart by how Log In answers (checklist 56)?

Unknown email, wrong password, inactive account and locked account must give the same status,
the same page and the same time. Time is dominated by argon2, so these tests use a realistic
cost (the OWASP minimum that production defaults to) instead of the cheap test hash, and give
the users hashes made with it. Cases (and a bare argon2 verification, for scale) are
interleaved in a shuffled order each round and compared by median, so drift and scheduling
noise hit every case alike. A real leak, such as an unknown email skipping argon2, shows in
every trial; noise on a busy machine rarely does three times running, so up to three trials
are made before the timing is judged.
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import timedelta

import pytest

from portal.accounts import passwords
from portal.clock import now as utcnow
from portal.extensions import db
from tests.conftest import without_csrf_tokens
from tests.factories import PASSWORD, make_user
from tests.smtp_server import SMTPServer

pytestmark = pytest.mark.timing

ROUNDS = 15
TRIALS = 3
WRONG = "not the password at all"
CASES = {
    # case: (email, password). Inactive and locked accounts get the right password: the
    # strongest probe, since only the account's state could then change the answer.
    "unknown email": ("nobody@example.test", WRONG),
    "wrong password": ("known@example.test", WRONG),
    "inactive account": ("inactive@example.test", PASSWORD),
    "locked account": ("locked@example.test", PASSWORD),
}
BARE_ARGON2 = "one argon2 verify"


@pytest.fixture
def timed_app(make_app, app):
    """The app with production-strength argon2 and its users, hashed under those parameters.

    The password lock limit is raised so the wrong-password account stays a wrong-password
    account for every round (being locked is its own case).
    """
    timed = make_app(ARGON2_TIME_COST=2, ARGON2_MEMORY_COST=19456, ARGON2_PARALLELISM=1, PASSWORD_MAX_FAILURES=1_000)
    with timed.app_context():
        make_user("known@example.test")
        make_user("inactive@example.test", active=False)
        locked = make_user("locked@example.test")
        locked.password_locked_until = utcnow() + timedelta(hours=1)
        db.session.commit()
        assert locked.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    return timed


def answer(response, email: str) -> tuple:
    """What an attacker compares: status, header names and the page, minus the email the form
    echoes and the CSRF token (it carries a timestamp, so it changes every second)."""
    page = response.get_data(as_text=True).replace(email, "EMAIL")
    page = without_csrf_tokens(page)
    return response.status_code, tuple(sorted(response.headers.keys())), page


def trial(app, client, stored_hash: str, shuffle: random.Random) -> tuple[dict, set]:
    """Time every case ROUNDS times, interleaved; return the medians and the answers seen."""
    seconds = {case: [] for case in [*CASES, BARE_ARGON2]}
    answers = set()
    for _ in range(ROUNDS):
        order = [*CASES, BARE_ARGON2]
        shuffle.shuffle(order)
        for case in order:
            if case == BARE_ARGON2:
                with app.app_context():
                    started = time.perf_counter()
                    passwords.verify_password(stored_hash, WRONG)
                    seconds[case].append(time.perf_counter() - started)
                continue
            email, password = CASES[case]
            started = time.perf_counter()
            response = client.post("/login", data={"email": email, "password": password})
            seconds[case].append(time.perf_counter() - started)
            answers.add(answer(response, email))
    return {case: statistics.median(values) for case, values in seconds.items()}, answers


def timing_problems(medians: dict) -> list[str]:
    argon2 = medians[BARE_ARGON2]
    logins = {case: medians[case] for case in CASES}
    problems = []
    if argon2 <= 0.005:
        problems.append("argon2 is too cheap for the comparison to mean anything")
    problems += [f"{case} costs less than one argon2 verify" for case, value in logins.items() if value < 0.8 * argon2]
    if max(logins.values()) >= 1.5 * min(logins.values()):
        problems.append("the slowest case takes 1.5x the fastest or more")
    unknown, wrong = logins["unknown email"], logins["wrong password"]
    if abs(unknown - wrong) >= 0.30 * min(unknown, wrong):
        problems.append("unknown email and wrong password differ by 30% or more")
    return problems


def test_failed_logins_look_and_take_the_same(timed_app):
    """Do unknown, wrong-password, inactive and locked accounts get the same answer in the
    same time, with the unknown email paying for one argon2 verification too?"""
    client = timed_app.test_client()
    for email, password in list(CASES.values()) * 2:  # warm up: hasher, templates, pool, session
        client.post("/login", data={"email": email, "password": password})
    with timed_app.app_context():
        stored_hash = passwords.hash_password(PASSWORD)
    shuffle = random.Random(56)
    reports = []
    for _ in range(TRIALS):
        medians, answers = trial(timed_app, client, stored_hash, shuffle)
        # The same answer every time, for every case: this part is not a matter of noise.
        assert len(answers) == 1, sorted((status, names) for status, names, _ in answers)
        status, _, page = answers.pop()
        assert status == 401 and "The email or password is incorrect" in page
        problems = timing_problems(medians)
        reports.append(({case: f"{value * 1000:.1f} ms" for case, value in medians.items()}, problems))
        if not problems:
            break
    print("median times per trial:", reports)  # shown on failure, or with -rP
    assert not problems, reports


# -- invitations: does an address with an account answer faster or slower? ----------------

INVITE_ROUNDS = 20
HAS_ACCOUNT = ("this practice", "another practice", "support staff")


def invitation_trial(client, addresses: dict, shuffle: random.Random) -> tuple[dict, set]:
    """Invite ROUNDS new addresses and ROUNDS addresses with an account (each once, so neither
    case revokes an earlier invitation), interleaved; return the medians and the answers seen."""
    seconds = {"new address": [], "has an account": []}
    answers = set()
    for _ in range(INVITE_ROUNDS):
        order = list(seconds)
        shuffle.shuffle(order)
        for case in order:
            email = addresses[case].pop()
            started = time.perf_counter()
            response = client.post("/practice/invitations", data={"email": email, "display_name": "Someone",
                                                                  "role": "staff"})
            seconds[case].append(time.perf_counter() - started)
            answers.add((response.status_code, response.headers.get("Location"),
                         response.get_data(as_text=True).replace(email, "EMAIL")))
    return {case: statistics.median(values) for case, values in seconds.items()}, answers


def test_invitations_take_the_same_time_whether_or_not_the_address_has_an_account(make_app, app):
    """Does an invitation to an address with an account (this practice, another, support
    staff) give the same answer as a new address, in the same time (medians within 25%)?
    Mail goes over SMTP to a server on loopback, as in production, so a case that skipped
    sending would show."""
    with SMTPServer() as smtp:
        smtp_app = make_app(MAIL_TRANSPORT="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port,
                            MAIL_SUPPRESS_SEND=False, MAIL_TIMEOUT_SECONDS=5)
        client = smtp_app.test_client()
        admin = make_user("timing-admin@example.test", role="practice_admin")
        needed = INVITE_ROUNDS * (TRIALS + 1)
        addresses = {"new address": [f"new-{n}@example.test" for n in range(needed)], "has an account": []}
        for n in range(needed):
            kind = HAS_ACCOUNT[n % len(HAS_ACCOUNT)]
            user = make_user(f"has-account-{n}@example.test",
                             role="support" if kind == "support staff" else "clinician",
                             practice=admin.practice if kind == "this practice" else None)
            addresses["has an account"].append(user.email)
        assert client.post("/login", data={"email": "timing-admin@example.test", "password": PASSWORD}
                           ).status_code == 303
        shuffle = random.Random(13)
        invitation_trial(client, addresses, shuffle)  # warm up: templates, pool, session, SMTP
        reports = []
        for _ in range(TRIALS):
            medians, answers = invitation_trial(client, addresses, shuffle)
            assert len(answers) == 1, answers
            assert answers.pop()[0] == 303
            new, existing = medians["new address"], medians["has an account"]
            problems = ["the two cases differ by 25% or more"] if abs(new - existing) >= 0.25 * min(new, existing) \
                else []
            reports.append(({case: f"{value * 1000:.1f} ms" for case, value in medians.items()}, problems))
            if not problems:
                break
        sent = len(smtp.messages)
    print("median times per trial:", reports)
    assert not problems, reports
    assert sent == 2 * INVITE_ROUNDS * (len(reports) + 1)  # one email per invitation, either way
