"""Who is on time, overdue, complete or expired: one SQL condition per figure, shared by the
Users list filter (`training=`) and the dashboard's compliance figures, so each figure's
link lists exactly the people it counts."""

from __future__ import annotations

from datetime import date

from sqlalchemy import ColumnElement, and_, exists, not_, select
from sqlalchemy.orm import aliased

from .models import CourseAssignment, User, WaitingEnrolment

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
