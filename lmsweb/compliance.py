"""Who is on time, overdue, complete or expired: one SQL condition per figure, shared by the
Users list filter (`training=`) and the dashboard's compliance figures, so each figure's
link lists exactly the people it counts."""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import date

from sqlalchemy import ColumnElement, and_, case, exists, func, not_, select
from sqlalchemy.orm import aliased

from . import scope
from .extensions import db
from .models import CourseAssignment, Group, Location, User, WaitingEnrolment, user_groups

TRAINING_LABELS = {
    "on_time": "On time",
    "overdue": "Overdue",
    "completed": "Completed",
    "expired": "Expired",
    "renewal_due": "Renewal due",
    "waiting": "Waiting for a license",
}


def _records(where) -> ColumnElement[bool]:
    a = aliased(CourseAssignment)
    return exists(select(a.id).where(a.user_id == User.id, a.archived_at.is_(None), *where(a)))


def condition(kind: str, today: date) -> ColumnElement[bool]:
    """People whose current training records are `kind` on `today`."""
    if kind == "overdue":
        return _records(lambda a: (a.state != "completed", a.due_date < today))
    if kind == "on_time":
        return and_(_records(lambda a: ()), not_(condition("overdue", today)))
    if kind == "completed":
        return and_(_records(lambda a: ()), not_(_records(lambda a: (a.state != "completed",))))
    if kind == "renewal_due":
        return _records(lambda a: (a.renewal_of_id.is_not(None), a.state != "completed"))
    if kind == "expired":
        old, new = aliased(CourseAssignment), aliased(CourseAssignment)
        renewed = exists(
            select(new.id).where(new.renewal_of_id == old.id, new.state == "completed")
        )
        return exists(
            select(old.id).where(old.user_id == User.id, old.expires_on <= today, ~renewed)
        )
    if kind == "waiting":
        return exists(
            select(WaitingEnrolment.id).where(
                WaitingEnrolment.user_id == User.id, WaitingEnrolment.resolved_at.is_(None)
            )
        )
    raise ValueError(kind)


# --- figures by group, location and manager ---------------------------------------------

DIMENSIONS = {"group": "Group", "location": "Location", "manager": "Manager"}
FIGURES = ("on_time", "overdue", "completed", "expired")


@dataclass
class Row:
    dimension: str
    id: int
    name: str
    people: int
    counts: dict[str, int]

    def percent(self, figure: str) -> int:
        return round(100 * self.counts[figure] / self.people) if self.people else 0

    def args(self, figure: str) -> dict[str, str]:
        """The Users list parameters that list exactly the people of this figure."""
        return {self.dimension: str(self.id), "training": figure}


# Past this many of a dimension, its figures name the SHORTLIST with the most people
# overdue (then expired, then the most people), not every one. Groups and locations are the
# organisation's own (a hundred shows every site of most); managers grow with it, a manager
# per dozen people: 8,000 rows of the dashboard, and of the weekly digest, at 100,000 users.
SHORTLIST = {"group": 100, "location": 100, "manager": 25}


def shortlisted(dimension: str, rows: dict[int, list[int]]) -> list[int]:
    """The ids of {id: [people, overdue, completed, expired]} the figures name: all of them
    up to the dimension's SHORTLIST, else those that need attention first."""
    limit = SHORTLIST[dimension]
    if len(rows) <= limit:
        return list(rows)
    return heapq.nsmallest(limit, rows, key=lambda i: (-rows[i][1], -rows[i][3], -rows[i][0], i))


# The request's scope (the default); a snapshot passes its audience's rule instead (None: the
# organisation), as the worker computes outside any request.
REQUEST = object()


def _in_scope(rule=REQUEST) -> ColumnElement[bool]:
    return scope.user_condition() if rule is REQUEST else scope.user_condition(rule, current=False)


def _per_user(today: date, rule=REQUEST):
    """One row per unarchived user with current records: overdue? all completed? expired?"""
    a = CourseAssignment
    overdue = func.max(case(((a.state != "completed") & (a.due_date < today), 1), else_=0))
    done = func.min(case((a.state == "completed", 1), else_=0))
    old, new = aliased(CourseAssignment), aliased(CourseAssignment)
    renewed = exists(select(new.id).where(new.renewal_of_id == old.id, new.state == "completed"))
    # Users with an expired record, read once (IN): a correlated EXISTS per record cost a
    # probe of every record of its user, ten seconds at a million users.
    expired = a.user_id.in_(select(old.user_id).where(old.expires_on <= today, ~renewed))
    return (
        select(
            a.user_id.label("user_id"),
            overdue.label("overdue"),
            done.label("done"),
            func.max(case((expired, 1), else_=0)).label("expired"),
        )
        .join(User, User.id == a.user_id)
        .where(a.archived_at.is_(None), User.status != "archived", _in_scope(rule))
        .group_by(a.user_id)
        .subquery()
    )


def figures(dimension: str, today: date, rule=REQUEST) -> list[Row]:
    """Compliance per group, location or manager: people with training and, of them, how
    many are on time, overdue, completed and expired (the same definitions as `condition`)."""
    per_user = _per_user(today, rule)
    people = func.count()
    sums = [
        people - func.sum(per_user.c.overdue),
        func.sum(per_user.c.overdue),
        func.sum(per_user.c.done),
        func.sum(per_user.c.expired),
    ]
    if dimension == "group":
        key, name = Group.id, Group.name
        query = (
            select(key, name, people, *sums)
            .select_from(per_user)
            .join(user_groups, user_groups.c.user_id == per_user.c.user_id)
            .join(Group, Group.id == user_groups.c.group_id)
        )
    elif dimension == "location":
        key, name = Location.id, Location.name
        query = (
            select(key, name, people, *sums)
            .select_from(per_user)
            .join(User, User.id == per_user.c.user_id)
            .join(Location, Location.id == User.location_id)
        )
    elif dimension == "manager":
        manager = aliased(User)
        key = manager.id
        name = manager.first_name + " " + manager.last_name
        query = (
            select(key, name, people, *sums)
            .select_from(per_user)
            .join(User, User.id == per_user.c.user_id)
            .join(manager, manager.id == User.manager_id)
        )
    else:
        raise ValueError(dimension)
    rows = db.session.execute(query.group_by(key, name).order_by(name, key))
    return [
        Row(dimension, ident, label, total,
            {f: int(n or 0) for f, n in zip(FIGURES, values, strict=True)})
        for ident, label, total, *values in rows
    ]  # fmt: skip


def all_figures(today: date, rule=REQUEST) -> dict[str, list[Row]]:
    return {dimension: figures(dimension, today, rule) for dimension in DIMENSIONS}


def people(kind: str, today: date, rule=REQUEST) -> int:
    """How many unarchived people the Users list shows for `training=kind`."""
    return db.session.scalar(
        select(func.count()).where(
            User.status != "archived", condition(kind, today), _in_scope(rule)
        )
    )
