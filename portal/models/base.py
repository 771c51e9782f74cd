"""Column helpers shared by the models."""

from datetime import UTC, datetime

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator

from portal import clock


def clock_now() -> datetime:
    """Column default: the server clock, looked up at each insert so a test that moves
    `portal.clock` moves the defaults too."""
    return clock.now()


class UTCDateTime(TypeDecorator):
    """Store naive UTC, hand back aware UTC datetimes on every backend (SQLite drops tzinfo)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not accepted; pass an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def render_item(type_, obj, autogen_context):
    """Alembic autogenerate hook: write UTCDateTime as the plain DateTime it stores."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime()"
    return False


# PostgreSQL-only indexes that migrations create and the models do not declare (they would be
# plain B-trees elsewhere, or SQLite cannot reflect them): support's trigram search indexes
# (migration 0015) and the practice review's expression and DESC NULLS LAST indexes (0016).
SEARCH_INDEX_SUFFIX = "_trgm"
REVIEW_INDEX_PREFIX = "ix_users_review_"


def skip_search_indexes(obj, name, type_, reflected, compare_to):
    """Alembic `include_object` hook: leave the PostgreSQL-only indexes out of autogenerate."""
    return not (type_ == "index" and name and (name.endswith(SEARCH_INDEX_SUFFIX)
                                                or name.startswith(REVIEW_INDEX_PREFIX)))
