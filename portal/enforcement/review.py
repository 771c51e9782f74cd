"""Read-only queries for the practice admin's enforcement review and its CSV export.

Every function runs a fixed number of SQL statements whatever the practice's size. Coverage
and the table's size come from counts the database keeps per practice (`practice_mfa_counts`,
updated by triggers); a search still counts its matches. Pages are cut with LIMIT/OFFSET on
indexed columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, case, func, or_, select
from sqlalchemy.orm import aliased

from portal.extensions import db
from portal.mfa import methods
from portal.models import MfaEnrollment, PracticeMfaCount, User

PER_PAGE = 25
# The method column sorts by what it shows, the registry's labels ("Authenticator Apps", "Email",
# "SMS"), not by the stored keys: each key's place among the labels in alphabetical order, so
# every database agrees whatever its collation. No method: NULL (last, see `_ordered`).
_METHOD_BY_LABEL = case(
    {method.key: place for place, method in enumerate(sorted(methods.ALL, key=lambda method: method.label.casefold()))},
    value=MfaEnrollment.method,
)
SORTS = {
    # Case-insensitive, as people read names ("de Vries" among the Ds).
    "name": func.lower(User.display_name),
    "email": User.email,  # stored in lower case
    "method": _METHOD_BY_LABEL,
    "enrolled": MfaEnrollment.enrolled_at,
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

    @classmethod
    def from_args(cls, args) -> TableQuery:
        """Read the table's query string; anything unknown falls back to a default."""
        filter_ = args.get("filter", "all")
        sort = args.get("sort", "name")
        direction = args.get("dir", "asc")
        try:
            page = max(1, min(int(args.get("page", 1)), 1_000_000))
        except (TypeError, ValueError):
            page = 1
        return cls(
            filter=filter_ if filter_ in FILTERS else "all",
            q=(args.get("q") or "").strip()[:100],
            sort=sort if sort in SORTS else "name",
            direction=direction if direction in ("asc", "desc") else "asc",
            page=page,
        )

    def args(self, **changes) -> dict:
        values = {"filter": self.filter, "q": self.q, "sort": self.sort, "dir": self.direction, "page": self.page}
        values.update(changes)
        return {key: value for key, value in values.items() if value not in ("", None)}


def _filtered(practice_id: int, query: TableQuery, *columns):
    statement = (
        select(*(columns or (User, MfaEnrollment)))
        .select_from(User)
        .outerjoin(MfaEnrollment, MfaEnrollment.user_id == User.id)
        .where(User.practice_id == practice_id)
    )
    # (NOT) EXISTS rather than testing the joined row: the planner then knows how many users
    # have a method, and reads a page in index order instead of sorting every match.
    method = aliased(MfaEnrollment)
    has_method = select(method.id).where(method.user_id == User.id).exists()
    if query.filter == "without_mfa":
        # The people who would have to enroll: active users with no method (as in coverage).
        statement = statement.where(~has_method, User.active.is_(True))
    elif query.filter == "with_mfa":
        statement = statement.where(has_method)
    if query.q:
        pattern = like_pattern(query.q)
        statement = statement.where(
            or_(func.lower(User.display_name).like(pattern, escape="\\"), User.email.like(pattern, escape="\\"))
        )
    return statement


NULLABLE_SORTS = {"method", "enrolled", "last_mfa"}


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


def _ordered(statement, query: TableQuery):
    column = SORTS[query.sort]
    order = column.desc() if query.direction == "desc" else column.asc()
    if query.sort not in NULLABLE_SORTS:
        # Name and email are never empty: no NULLs-last term, so an index on (practice_id,
        # the sort expression, id) can serve the page without sorting every row.
        return statement.order_by(order, User.id)
    nulls_last = case((column.is_(None), 1), else_=0)
    return statement.order_by(nulls_last, order, User.id)


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
    capped = total > SEARCH_COUNT_LIMIT
    pages = None if capped else max(1, -(-total // per_page))
    page = query.page if capped else min(query.page, pages)
    # The page's ids first (for name and email, an index-only scan however deep the page),
    # then their rows: a deep page does not read every row before it. One id more than a page
    # tells whether there is a next page when the total is not known.
    ids = _ordered(_filtered(practice_id, query, User.id), query).limit(per_page + 1).offset((page - 1) * per_page)
    page_ids = ids.subquery("page")
    rows = select(User, MfaEnrollment).join(page_ids, page_ids.c.id == User.id).outerjoin(
        MfaEnrollment, MfaEnrollment.user_id == User.id)
    result = db.session.execute(_ordered(rows, query)).all()
    has_next = len(result) > per_page
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
