"""Export Users to Excel: two sheets, each one aggregated Core query streamed row by row
into the workbook (the users, then one row per training record of those users).

Loading ORM objects with their groups for 100,000 users took 8.5 s; one query with the
groups concatenated in SQL (group_concat / string_agg) and the course counts as
correlated subqueries took 0.6 s (shared/PERF-NOTES.md). Rows are fetched in batches
(a server-side cursor on PostgreSQL) and written by the streamed writer of lmsweb/xlsx.py,
so memory stays bounded however many users there are. The per-row work is kept small (a
cProfile of 100,000 users had the ORM's row processing, date conversions and a group sort
per row as a third of the time): Core rows, dates computed by the database as Excel day
numbers, group names spelled once per combination, both counts from one subquery.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from functools import lru_cache
from typing import IO, Any

from sqlalchemy import Select, String, and_, case, cast, func, literal, select

from .extensions import db
from .models import Course, CourseAssignment, Group, Location, User, user_groups, utcnow
from .xlsx import QueryRows, Sheet, excel_day, stream_rows, write_sheets

HEADERS = (
    "First name",
    "Last name",
    "Email",
    "User ID",
    "Location",
    "Groups",
    "Role",
    "Status",
    "Approved",
    "Notified",
    "Activated",
    "Assigned courses",
    "Completed courses",
)
WIDTHS = (16, 18, 30, 14, 18, 30, 9, 10, 12, 12, 12, 10, 10)
KINDS = "ttttttttdddnn"
# The second sheet: one row per training record of the exported users, archived ones
# included (an archived user's records are all archived, and still theirs).
ASSIGNMENT_HEADERS = (
    "Last name",
    "First name",
    "Email",
    "User ID",
    "Course code",
    "Course title",
    "State",
    "Overdue",
    "Assigned",
    "Due",
    "Started",
    "Completed",
    "Archived",
)
ASSIGNMENT_WIDTHS = (18, 16, 30, 14, 12, 30, 12, 9, 12, 12, 12, 12, 12)
ASSIGNMENT_KINDS = "ttttttttddddd"
STATE_LABELS = {"assigned": "Not started", "in_progress": "In progress", "completed": "Completed"}
ROLE_LABELS = {"admin": "Administrator", "learner": "Learner"}
STATUS_LABELS = {"pending": "Pending", "active": "Active", "archived": "Archived"}
# Both counts from one lookup of the user's records: assigned * _PACK + completed.
_PACK = 1 << 20


def _group_ids_column():
    """SQLite: the user's group ids, joined from the (user_id, group_id) index alone, one
    correlated scalar subquery per row, no join to the groups table (SQLite walks the name
    index and looks each user's groups and records up; PostgreSQL aggregates them once,
    `_export_query_joined`)."""
    joined = func.group_concat(user_groups.c.group_id, ",")
    return select(joined).where(user_groups.c.user_id == User.id).correlate(User).scalar_subquery()


def _group_names() -> Callable[[str | None], str]:
    """ids joined by "," -> the names, sorted, joined by ", ". Users share a few
    combinations of groups, so each combination is spelled once (a bounded cache)."""
    names = dict(db.session.execute(select(Group.id, Group.name)).all())

    @lru_cache(maxsize=20_000)
    def spell(joined: str) -> str:
        found = (names.get(int(ident)) for ident in joined.split(","))
        return ", ".join(sorted((name for name in found if name is not None), key=str.lower))

    return lambda joined: spell(joined) if joined else ""


def _label(column, labels: dict[str, str]):
    """A code column spelled as its label by the database (unknown codes as they are)."""
    return case(*((column == code, label) for code, label in labels.items()), else_=column)


def export_query(users: Select[tuple[User]]) -> Select:
    """The export's columns over `users` (a filtered users query), in list order."""
    if db.session.get_bind().dialect.name == "postgresql":
        return _export_query_joined(users)
    a = CourseAssignment
    counts = (
        select(_packed_counts())
        .where(a.user_id == User.id, a.archived_at.is_(None))
        .correlate(User)
        .scalar_subquery()
    )
    return _columns(users, _group_ids_column(), counts)


def _packed_counts():
    """A user's records and completed records, aggregated as assigned * _PACK + completed."""
    a = CourseAssignment
    return func.count(a.id) * _PACK + func.count(a.id).filter(a.state == "completed")


def _columns(users: Select[tuple[User]], group_ids, counts) -> Select:
    return (
        users.with_only_columns(
            User.first_name,
            User.last_name,
            User.email,
            User.employee_id,
            Location.name,
            group_ids,
            _label(User.role, ROLE_LABELS),
            _label(User.status, STATUS_LABELS),
            excel_day(User.approved_at),
            excel_day(User.notified_at),
            excel_day(User.activated_at),
            counts,
            maintain_column_froms=True,
        )
        .outerjoin(Location, Location.id == User.location_id)
        .order_by(User.last_name, User.first_name, User.id)
    )


def _export_query_joined(users: Select[tuple[User]]) -> Select:
    """PostgreSQL: the groups and counts aggregated once for the exported users and joined
    (merge joins in id order, then one sort by name), rather than two subqueries per user
    along the name index: at a million users the query took 11.0 s of the server's time
    that way, reading the users' rows at random in name order, and 3.5 s this way. A few
    users (checked rows, a search) are still found by their indexes: the aggregates read
    only the rows of `users`."""
    a = CourseAssignment
    exported = users.with_only_columns(User.id).order_by(None)
    groups = (
        select(
            user_groups.c.user_id,
            func.string_agg(cast(user_groups.c.group_id, String), literal(",")).label("ids"),
        )
        .where(user_groups.c.user_id.in_(exported))
        .group_by(user_groups.c.user_id)
        .subquery("export_groups")
    )
    counts = (
        select(a.user_id, _packed_counts().label("packed"))
        .where(a.archived_at.is_(None), a.user_id.in_(exported))
        .group_by(a.user_id)
        .subquery("export_counts")
    )
    return (
        _columns(users, groups.c.ids, counts.c.packed)
        .outerjoin(groups, groups.c.user_id == User.id)
        .outerjoin(counts, counts.c.user_id == User.id)
    )


def export_rows(users: Select[tuple[User]]) -> Iterator[tuple[Any, ...]]:
    """The users sheet's rows, streamed in batches from one query. Dates arrive as Excel
    day numbers (excel_day), so nothing per cell is converted here."""
    groups = _group_names()
    for row in stream_rows(export_query(users)):
        (first, last, email, user_id, location, group_ids, role, status, approved, notified,
         activated, counts) = row  # fmt: skip
        assigned, completed = divmod(counts or 0, _PACK)
        yield (first, last, email, user_id, location, groups(group_ids), role, status,
               approved, notified, activated, assigned, completed)  # fmt: skip


def assignments_query(users: Select[tuple[User]], today: date) -> Select:
    """Every training record of `users`, in the users sheet's order, then by course."""
    a = CourseAssignment
    overdue = case(
        (and_(a.archived_at.is_(None), a.state != "completed", a.due_date < today), "yes"),
        else_="no",
    )
    return (
        users.with_only_columns(
            User.last_name,
            User.first_name,
            User.email,
            User.employee_id,
            Course.code,
            Course.title,
            _label(a.state, STATE_LABELS),
            overdue,
            excel_day(a.assigned_at),
            excel_day(a.due_date),
            excel_day(a.started_at),
            excel_day(a.completed_at),
            excel_day(a.archived_at),
            maintain_column_froms=True,
        )
        .join(a, a.user_id == User.id)
        .join(Course, Course.id == a.course_id)
        .order_by(User.last_name, User.first_name, User.id, Course.code, a.id)
    )


def sheets(users: Select[tuple[User]], today: date) -> list[Sheet]:
    """The export: the users, then their training records. Each sheet is its own query; the
    records' rows are written as the query gives them (the state's label is spelled by the
    query), so that sheet may be written by a process of its own beside the users'
    (xlsx.QueryRows): at a million users the two take as long as one."""
    return [
        Sheet("Users", HEADERS, export_rows(users), WIDTHS, KINDS),
        Sheet(
            "Assignments",
            ASSIGNMENT_HEADERS,
            QueryRows(assignments_query(users, today)),
            ASSIGNMENT_WIDTHS,
            ASSIGNMENT_KINDS,
        ),
    ]


def write_users(target: str | IO[bytes], users: Select[tuple[User]]) -> int:
    """Write the users workbook to `target`; returns the number of users written."""
    return write_sheets(target, sheets(users, utcnow().date()))[0]


def file_name(today: date) -> str:
    return f"users-{today.isoformat()}.xlsx"
