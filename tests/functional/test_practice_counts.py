"""The per-practice MFA counts the review page reads are kept by database triggers. Whatever
happens to users and their methods, through the portal's own services or straight SQL, do the
counts equal what counting every user says?"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select, update

from portal.clock import now as utcnow
from portal.enforcement import review
from portal.extensions import db
from portal.mfa import enrollment
from portal.models import MfaEnrollment, User
from tests.factories import make_enrollment, make_practice, make_user

METHODS = ("email", "sms", "totp")
OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["add", "enroll", "switch", "clear", "deactivate", "reactivate", "move", "delete"]),
        st.integers(min_value=0, max_value=50),
        st.sampled_from(METHODS),
    ),
    max_size=25,
)
COUNTS = settings(max_examples=25, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def counted(practice_id: int) -> dict:
    """What counting every user of the practice says (the review's old queries)."""
    rows = db.session.execute(
        select(User.active, MfaEnrollment.method, func.count(User.id))
        .select_from(User).outerjoin(MfaEnrollment, MfaEnrollment.user_id == User.id)
        .where(User.practice_id == practice_id).group_by(User.active, MfaEnrollment.method)
    ).all()
    by_method = {method: 0 for method in METHODS}
    active_total = everyone = with_mfa = without_active = 0
    for active, method, count in rows:
        everyone += count
        with_mfa += count if method else 0
        if active:
            active_total += count
            if method:
                by_method[method] += count
            else:
                without_active += count
    return {"coverage": review.Coverage(total=active_total, enrolled=sum(by_method.values()), by_method=by_method),
            "all": everyone, "with_mfa": with_mfa, "without_mfa": without_active}


def kept(practice_id: int) -> dict:
    def total(filter_):
        return review.users_page(practice_id, review.TableQuery(filter=filter_)).total

    return {"coverage": review.coverage(practice_id), "all": total("all"), "with_mfa": total("with_mfa"),
            "without_mfa": total("without_mfa")}


@COUNTS
@given(operations=OPERATIONS)
def test_kept_counts_equal_a_full_count(app, operations):
    home, other = make_practice(), make_practice()
    support = make_user(role="support")
    users = [make_user(practice=home) for _ in range(3)]
    now = utcnow()
    for action, index, method in operations:
        user = users[index % len(users)]
        db.session.refresh(user)
        if action == "add":
            users.append(make_user(practice=home if index % 3 else other, active=index % 4 != 0))
        elif action == "enroll" and user.mfa is None:
            make_enrollment(user, method)
        elif action == "switch":
            enrollment.activate(user, method=method, now=now,
                                phone_e164="+12025550143" if method == "sms" else None,
                                totp_secret="secret" if method == "totp" else None)
        elif action == "clear" and user.mfa is not None:
            enrollment.clear_by_support(user, actor=support, reason="lost phone", ticket="T-1", now=now)
        elif action in ("deactivate", "reactivate"):
            user.active = action == "reactivate"
            db.session.commit()
        elif action == "move":
            db.session.execute(update(User).where(User.id == user.id).values(
                practice_id=other.id if user.practice_id == home.id else home.id))
            db.session.commit()
        elif action == "delete" and len(users) > 1:
            db.session.execute(delete(User).where(User.id == user.id))
            db.session.commit()
            users.remove(user)
        db.session.expire_all()
    for practice in (home, other):
        assert kept(practice.id) == counted(practice.id), operations


def test_a_new_practice_starts_at_zero_and_counts_its_first_user(app):
    practice = make_practice()
    assert review.coverage(practice.id) == review.Coverage(total=0, enrolled=0,
                                                           by_method={"totp": 0, "sms": 0, "email": 0})
    user = make_user(practice=practice)
    make_enrollment(user, "sms")
    coverage = review.coverage(practice.id)
    assert (coverage.total, coverage.enrolled, coverage.by_method["sms"]) == (1, 1, 1)
