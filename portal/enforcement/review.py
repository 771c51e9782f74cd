"""Read-only queries for the practice admin's enforcement review and its CSV export.

Every function runs a fixed number of SQL statements whatever the practice's size. Coverage
and the table's size come from counts the database keeps per practice (`practice_mfa_counts`,
updated by triggers); a search still counts its matches. Pages are cut with LIMIT/OFFSET on
indexed columns: every sort, either way, reads its page from an index on users (migration 0016),
so a page costs the same in a practice of 1,000 or of 50,000 users.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import and_, bindparam, func, or_, select

from portal.extensions import db
from portal.forms import read_search
from portal.mfa import methods
from portal.models import MfaEnrollment, PracticeMfaCount, User

PER_PAGE = 25
# Each sort is a column of users (or an expression PostgreSQL indexes), so that an index
# (practice_id, sort, id) hands over a page without reading the rest of the practice. The
# method and its enrolment date are copies on the user that triggers keep (migration 0016).
SORTS = {
    # Case-insensitive, as people read names ("de Vries" among the Ds).
    "name": func.lower(User.display_name),
    "email": User.email,  # stored in lower case
    # The method column sorts by what it shows, the registry's labels ("Authenticator Apps",
    # "Email", "SMS"): the stored rank is each method's place among them in alphabetical order.
    "method": User.mfa_method_rank,
    "enrolled": User.mfa_enrolled_at,
    "last_mfa": User.last_mfa_at,
}
FILTERS = ("all", "without_mfa", "with_mfa")


@dataclass(frozen=True)
class Coverage:
    total: int
    enrolled: int
    by_method: dict[str, int]

    @property
    def without(self) -> int:
        return self.total - self.enrolled

    @property
    def percent(self) -> int:
        return round(100 * self.enrolled / self.total) if self.total else 0

    @property
    def labelled(self) -> list[tuple[str, int]]:
        """(label, users) for each method, in the registry's order."""
        return [(method.label, self.by_method[method.key]) for method in methods.ALL]


@dataclass(frozen=True)
class Counts:
    """A practice's users by (active, method or "none"), as the database's triggers keep them."""

    rows: tuple[tuple[bool, str, int], ...]

    @property
    def coverage(self) -> Coverage:
        """N of M active users have MFA, split by method."""
        by_method = {method.key: 0 for method in methods.ALL}
        for active, method, users in self.rows:
            if active and method in by_method:
                by_method[method] = users
        total = sum(users for active, _method, users in self.rows if active)
        return Coverage(total=total, enrolled=sum(by_method.values()), by_method=by_method)

    def table_total(self, filter_: str) -> int:
        """How many users the table lists under this filter (no search)."""
        if filter_ == "without_mfa":
            return sum(users for active, method, users in self.rows if active and method == "none")
        if filter_ == "with_mfa":
            return sum(users for _active, method, users in self.rows if method != "none")
        return sum(users for _active, _method, users in self.rows)


_COUNTS = select(PracticeMfaCount.active, PracticeMfaCount.method, PracticeMfaCount.users).where(
    PracticeMfaCount.practice_id == bindparam("practice_id"))


def counts(practice_id: int) -> Counts:
    """The practice's kept counts (one query over a few rows)."""
    return Counts(tuple(tuple(row) for row in db.session.execute(_COUNTS, {"practice_id": practice_id})))


def coverage(practice_id: int) -> Coverage:
    """N of M active users have MFA, split by method (one query over a few kept counts)."""
    return counts(practice_id).coverage


@dataclass(frozen=True)
class TableQuery:
    filter: str = "all"
    q: str = ""
    sort: str = "name"
    direction: str = "asc"
    page: int = 1
    # What in the query string could not be used, in words for the page (nothing else reads it).
    problems: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def from_args(cls, args) -> TableQuery:
        """Read the table's query string; anything that cannot be used falls back to a default
        and is named in `problems` (an old bookmark still opens the table, and says what changed)."""
        problems = []
        filter_ = args.get("filter") or "all"
        if filter_ not in FILTERS:
            filter_ = "all"
            problems.append("That filter does not exist, so every user is shown.")
        sort = args.get("sort") or "name"
        if sort not in SORTS:
            sort = "name"
            problems.append("The table cannot be sorted that way, so it is sorted by name.")
        direction = args.get("dir") or "asc"
        if direction not in ("asc", "desc"):
            direction = "asc"
            problems.append("The sort direction was not understood, so the order is ascending.")
        try:
            page = min(int(args.get("page") or 1), 1_000_000)  # past the last page: the last page
        except (TypeError, ValueError):
            page = 0
        if page < 1:
            page = 1
            problems.append("The page must be a whole number from 1, so the first page is shown.")
        q, problem = read_search(args.get("q"))
        if problem:
            problems.append(problem)
        return cls(filter=filter_, q=q, sort=sort, direction=direction, page=page, problems=tuple(problems))

    def args(self, **changes) -> dict:
        values = {"filter": self.filter, "q": self.q, "sort": self.sort, "dir": self.direction, "page": self.page}
        values.update(changes)
        return {key: value for key, value in values.items() if value not in ("", None)}


def _filtered(practice_id: int, query: TableQuery, *columns):
    """The table's users (ids only, or with their enrollment when no columns are given)."""
    if columns:
        statement = select(*columns).where(User.practice_id == practice_id)
    else:
        statement = (select(User, MfaEnrollment).outerjoin(MfaEnrollment, MfaEnrollment.user_id == User.id)
                     .where(User.practice_id == practice_id))
    # Whether a user has MFA, from the copies on the user, both of them: with the method's or
    # the enrolment date's sort, that column's own index then starts at the first match (IS
    # NULL / IS NOT NULL is a condition a B-tree answers) instead of skipping non-matches.
    no_method = and_(User.mfa_method_rank.is_(None), User.mfa_enrolled_at.is_(None))
    if query.filter == "without_mfa":
        # The people who would have to enroll: active users with no method (as in coverage).
        statement = statement.where(no_method, User.active.is_(True))
    elif query.filter == "with_mfa":
        statement = statement.where(User.mfa_method_rank.is_not(None), User.mfa_enrolled_at.is_not(None))
    if query.q:
        # ILIKE on PostgreSQL (the trigram index of migration 0015 serves a rare term), lower()
        # LIKE elsewhere; emails are stored in lower case.
        pattern = like_pattern(query.q)
        statement = statement.where(
            or_(User.display_name.ilike(pattern, escape="\\"), User.email.like(pattern, escape="\\"))
        )
    return statement




def like_pattern(text: str) -> str:
    """A case-insensitive "contains" pattern in which %, _ and \\ match themselves (escape "\\")."""
    return "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@dataclass(frozen=True)
class Members:
    users: list[User]
    more: bool  # there are more users than listed


def members(practice_id: int, limit: int = 200) -> Members:
    """The practice's first `limit` users by name (case-insensitive), for the Practice users
    page; whether there are more (the MFA review pages and searches through all of them)."""
    users = list(db.session.scalars(
        select(User).where(User.practice_id == practice_id)
        .order_by(func.lower(User.display_name), User.id).limit(limit + 1)
    ))
    return Members(users=users[:limit], more=len(users) > limit)


# Sorts whose column is NULL for some users (no method, never signed in with MFA).
NULLABLE_SORTS = {"method", "enrolled", "last_mfa"}


def _ordered(statement, query: TableQuery, *, reverse: bool = False):
    """ORDER BY the sort, then the id, both in the chosen direction, users without a value last
    either way. Shaped so that one index reads it in order, with no sort of the practice:
    (practice_id, sort, id) forwards for "asc" (PostgreSQL's ascending order puts NULLs last),
    backwards for name and email "desc" (never NULL), and for a nullable column "desc" its
    DESC NULLS LAST twin (migration 0016). SQLite (3.30+) takes the same words and sorts.
    `reverse`: the exact opposite order (users without a value first), the same index read
    the other way."""
    column = SORTS[query.sort]
    ascending = (query.direction == "asc") != reverse
    order = column.asc() if ascending else column.desc()
    if query.sort in NULLABLE_SORTS:
        order = order.nulls_first() if reverse else order.nulls_last()  # SQLite puts NULLs first in ascending order
    return statement.order_by(order, User.id.asc() if ascending else User.id.desc())


@dataclass(frozen=True)
class Row:
    id: int
    name: str
    email: str
    role: str
    active: bool
    method: str | None
    enrolled_at: object
    last_mfa_at: object

    @property
    def method_label(self) -> str:
        return methods.label(self.method)


def _row(user: User, enrollment: MfaEnrollment | None) -> Row:
    return Row(
        id=user.id, name=user.display_name, email=user.email, role=user.role_label, active=user.active,
        method=enrollment.method if enrollment else None,
        enrolled_at=enrollment.enrolled_at if enrollment else None,
        last_mfa_at=user.last_mfa_at,
    )


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    total: int
    page: int
    pages: int | None  # None when a search matched more than SEARCH_COUNT_LIMIT users
    query: TableQuery
    has_next: bool = False

    @property
    def matches(self) -> str:
        if self.pages is None:
            return f"More than {SEARCH_COUNT_LIMIT:,} users match"
        return f"{self.total} user{'s' if self.total != 1 else ''}"

    @property
    def position(self) -> str:
        return f"page {self.page}" if self.pages is None else f"page {self.page} of {self.pages}"


# A search counts its matches up to this many; beyond it the table says "more than" and pages
# on with Next, so a broad search of a large practice never counts every user.
SEARCH_COUNT_LIMIT = 1000


def users_page(practice_id: int, query: TableQuery, per_page: int = PER_PAGE, known: Counts | None = None) -> Page:
    """One page of the practice's users with their MFA state (two queries; one with `known`,
    the practice's counts when the caller has them already, and no search)."""
    total = _total(practice_id, query, known)
    capped = bool(query.q) and total > SEARCH_COUNT_LIMIT  # only a search's count stops at the cap
    pages = None if capped else max(1, -(-total // per_page))
    page = query.page if capped else min(query.page, pages)
    # The page's ids first (for name and email, an index-only scan however deep the page),
    # then their rows: a deep page does not read every row before it. One id more than a page
    # tells whether there is a next page when the total is not known.
    offset = (page - 1) * per_page
    matching = _filtered(practice_id, query, User.id)
    if pages is not None and offset > total // 2:
        # Past the middle, the page is counted from the end and read backwards: an OFFSET reads
        # every index entry it skips, so no page skips more than half the table and the last
        # pages cost what the first do. (The total is exact here: the kept counts, or a
        # search's matches below the cap.)
        take = min(per_page, total - offset)
        ids = _ordered(matching, query, reverse=True).limit(take).offset(max(0, total - offset - take))
    else:
        ids = _ordered(matching, query).limit(per_page + 1).offset(offset)
    page_ids = ids.subquery("page")
    rows = select(User, MfaEnrollment).join(page_ids, page_ids.c.id == User.id).outerjoin(
        MfaEnrollment, MfaEnrollment.user_id == User.id)
    result = db.session.execute(_ordered(rows, query)).all()
    has_next = page < pages if pages is not None else len(result) > per_page
    return Page(rows=[_row(user, enrollment) for user, enrollment in result[:per_page]], total=total, page=page,
                pages=pages, query=query, has_next=has_next)


def _total(practice_id: int, query: TableQuery, known: Counts | None) -> int:
    """How many rows the table has: from the kept counts, or for a search its matches counted
    up to one more than SEARCH_COUNT_LIMIT."""
    if query.q:
        matches = _filtered(practice_id, query, User.id).limit(SEARCH_COUNT_LIMIT + 1)
        return db.session.scalar(select(func.count()).select_from(matches.subquery()))
    return (known or counts(practice_id)).table_total(query.filter)


def export_rows(practice_id: int, query: TableQuery, batch: int = 1000) -> Iterator[Row]:
    """Every row of the filtered, sorted table, streamed in batches (for CSV)."""
    statement = _ordered(_filtered(practice_id, query), query).execution_options(yield_per=batch)
    for user, enrollment in db.session.execute(statement):
        yield _row(user, enrollment)


def member(practice_id: int, user_id: int) -> Row | None:
    """One user's row, only if they belong to this practice."""
    found = db.session.execute(
        select(User, MfaEnrollment).outerjoin(MfaEnrollment, MfaEnrollment.user_id == User.id)
        .where(and_(User.id == user_id, User.practice_id == practice_id))
    ).first()
    return _row(*found) if found else None
