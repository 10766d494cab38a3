"""How many users of each status and role the organisation, each location and each group
holds, as the database keeps them (`user_counts`, migration 0015_user_counts): the Users
list's count where its filters are no more than those, one index range instead of counting
the rows (a group of 7,815 members: 20 ms counted, a fraction of one read)."""

from __future__ import annotations

from sqlalchemy import func, literal, select, text, union_all

from . import scope
from .database import PREPARED
from .extensions import db
from .models import STATUSES, User, user_counts, user_groups
from .user_queries import UserFilters

c = user_counts.c


def kept(filters: UserFilters) -> dict[str, int] | None:
    """The users matching `filters`, per status, from the kept counts; None where the filters
    narrow by more than status, role and one location or one group, or an administrator's
    scope narrows the list."""
    if (
        filters.q
        or filters.by_manager
        or filters.training
        or filters.course
        or filters.course_state
        or len(filters.location) + len(filters.group) > 1
        or scope.current_rule() is not None
    ):
        return None
    if filters.location:
        kind, ref = "location", filters.location[0]
    elif filters.group:
        kind, ref = "group", filters.group[0]
    else:
        kind, ref = "all", 0
    query = select(c.status, func.sum(c.n)).where(c.kind == kind, c.ref_id == ref)
    statuses = set(filters.status)
    if statuses and len(statuses) < len(STATUSES):
        query = query.where(c.status.in_(sorted(statuses)))
    if filters.role:
        query = query.where(c.role.in_(filters.role))
    counted = query.group_by(c.status).having(func.sum(c.n) > 0).execution_options(**PREPARED)
    return {status: int(n) for status, n in db.session.execute(counted)}


def held(kind: str, refs: list[int]):
    """How many users these locations or groups (`kind`) hold together, of every status and
    role, as a scalar subquery: one index range of the kept counts."""
    return (
        select(func.coalesce(func.sum(c.n), 0))
        .where(c.kind == kind, c.ref_id.in_(refs))
        .scalar_subquery()
    )


def everyone() -> int:
    """How many users there are, of every status and role."""
    return int(db.session.scalar(select(func.sum(c.n)).where(c.kind == "all")) or 0)


def _defined():
    """Everyone counted, by key, from the users themselves."""
    u = User
    return union_all(
        select(literal("all"), literal(0), u.status, u.role, func.count()).group_by(
            u.status, u.role
        ),
        select(literal("location"), u.location_id, u.status, u.role, func.count())
        .where(u.location_id.is_not(None))
        .group_by(u.location_id, u.status, u.role),
        select(literal("group"), user_groups.c.group_id, u.status, u.role, func.count())
        .join(u, u.id == user_groups.c.user_id)
        .group_by(user_groups.c.group_id, u.status, u.role),
    )


def drift() -> list[str]:
    """How the kept counts differ from the users, one line per key that differs; empty when
    they agree. For `flask lms check`."""
    stored = {
        tuple(key): int(n)
        for *key, n in db.session.execute(
            select(c.kind, c.ref_id, c.status, c.role, func.sum(c.n))
            .group_by(c.kind, c.ref_id, c.status, c.role)
            .having(func.sum(c.n) != 0)
        )
    }
    defined = {tuple(key): int(n) for *key, n in db.session.execute(_defined())}
    return [
        f"COUNT {' '.join(map(str, key))}: kept {stored.get(key, 0)}, "
        f"the users say {defined.get(key, 0)}"
        for key in sorted(stored.keys() | defined.keys())
        if stored.get(key, 0) != defined.get(key, 0)
    ]


def repair() -> None:
    """Rewrite the kept counts from the users (after `drift` found them wrong: written
    around the triggers, or the triggers were dropped)."""
    db.session.execute(user_counts.delete())
    db.session.execute(
        user_counts.insert().from_select(["kind", "ref_id", "status", "role", "n"], _defined())
    )


# PostgreSQL: each key's rows summed into one, in one statement. A writer appending a row
# meanwhile is not waited for: its row is not in this statement's snapshot and stays. A
# second merge at once waits for this one's rows, then finds them gone.
_MERGE = text(
    "WITH many AS (SELECT kind, ref_id, status, role FROM user_counts"
    " GROUP BY kind, ref_id, status, role HAVING count(*) > 1 OR sum(n) = 0),"
    " gone AS (DELETE FROM user_counts c USING many WHERE c.kind = many.kind"
    " AND c.ref_id = many.ref_id AND c.status = many.status AND c.role = many.role"
    " RETURNING c.kind, c.ref_id, c.status, c.role, c.n)"
    " INSERT INTO user_counts (kind, ref_id, status, role, n)"
    " SELECT kind, ref_id, status, role, sum(n) FROM gone"
    " GROUP BY kind, ref_id, status, role HAVING sum(n) <> 0"
)


def merge() -> None:
    """Sum each key's rows into one (PostgreSQL appends a row per change), and drop the
    keys that count nobody."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(_MERGE)
    else:
        db.session.execute(user_counts.delete().where(c.n == 0))
