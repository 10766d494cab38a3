"""Export Users to Excel: one aggregated Core query streamed row by row into the workbook.

Loading ORM objects with their groups for 100,000 users took 8.5 s; one query with the
groups concatenated in SQL (group_concat / string_agg) and the course counts as
correlated subqueries took 0.6 s (shared/PERF-NOTES.md). Rows are fetched in batches
(a server-side cursor on PostgreSQL) and written by the streamed writer of lmsweb/xlsx.py,
so memory stays bounded however many users there are.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import IO, Any

from sqlalchemy import Select, func, literal, select

from .extensions import db
from .models import CourseAssignment, Group, Location, User, user_groups
from .xlsx import write_workbook

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
BATCH = 1000


# Joins group names in SQL; export_rows sorts them and joins them with ", " (a name may
# itself contain ", ", never this control character, which xlsx text cannot hold anyway).
GROUP_SEPARATOR = "\x1f"


def _groups_column():
    """The user's group names, joined in SQL: one correlated scalar subquery per row."""
    dialect = db.session.get_bind().dialect.name
    joined = (
        func.string_agg(Group.name, literal(GROUP_SEPARATOR))
        if dialect == "postgresql"
        else func.group_concat(Group.name, GROUP_SEPARATOR)
    )
    return (
        select(joined)
        .select_from(user_groups.join(Group, Group.id == user_groups.c.group_id))
        .where(user_groups.c.user_id == User.id)
        .correlate(User)
        .scalar_subquery()
    )


def _groups(joined: str | None) -> str:
    return ", ".join(sorted(joined.split(GROUP_SEPARATOR), key=str.lower)) if joined else ""


def export_query(users: Select[tuple[User]]) -> Select:
    """The export's columns over `users` (a filtered users query), in list order."""
    assigned = (
        select(func.count(CourseAssignment.id))
        .where(CourseAssignment.user_id == User.id, CourseAssignment.archived_at.is_(None))
        .scalar_subquery()
    )
    completed = (
        select(func.count(CourseAssignment.id))
        .where(
            CourseAssignment.user_id == User.id,
            CourseAssignment.archived_at.is_(None),
            CourseAssignment.state == "completed",
        )
        .scalar_subquery()
    )
    return (
        users.with_only_columns(
            User.first_name,
            User.last_name,
            User.email,
            User.employee_id,
            Location.name,
            _groups_column(),
            User.role,
            User.status,
            User.approved_at,
            User.notified_at,
            User.activated_at,
            assigned,
            completed,
            maintain_column_froms=True,
        )
        .outerjoin(Location, Location.id == User.location_id)
        .order_by(User.last_name, User.first_name, User.id)
    )


def _day(value) -> date | None:
    return value.date() if value is not None else None


def export_rows(users: Select[tuple[User]]) -> Iterator[tuple[Any, ...]]:
    """The export's rows, streamed in batches from one query."""
    result = db.session.execute(
        export_query(users).execution_options(stream_results=True, yield_per=BATCH)
    )
    for row in result:
        (first, last, email, user_id, location, groups, role, status, approved, notified,
         activated, assigned, completed) = row  # fmt: skip
        yield (
            first,
            last,
            email,
            user_id or "",
            location or "",
            _groups(groups),
            "Administrator" if role == "admin" else "Learner",
            status.capitalize(),
            _day(approved),
            _day(notified),
            _day(activated),
            assigned,
            completed,
        )


def write_users(target: str | IO[bytes], users: Select[tuple[User]]) -> int:
    """Write the users workbook to `target`; returns the number of users written."""
    return write_workbook(target, "Users", HEADERS, export_rows(users), widths=WIDTHS)


def file_name(today: date) -> str:
    return f"users-{today.isoformat()}.xlsx"
