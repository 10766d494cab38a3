"""A user's life: approve, archive (user or course activity only), restore, groups.

Functions flush but never commit; each returns what it changed so the caller can audit
and tell the administrator.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from .extensions import db
from .licensing import DomainError, archive_activity
from .models import CourseAssignment, Group, User, utcnow


def approve(user: User) -> bool:
    """A pending user becomes active. Returns False if nothing changed."""
    if user.status == "archived":
        raise DomainError(f"{user.name} is archived; restore them first.")
    if user.status == "active":
        return False
    user.status = "active"
    user.approved_at = utcnow()
    return True


@dataclass
class ArchivePlan:
    """What archiving would do: shown before, and returned after."""

    unstarted: list[CourseAssignment] = field(default_factory=list)
    started: list[CourseAssignment] = field(default_factory=list)

    @property
    def seats_returned(self) -> Counter[str]:
        return Counter(a.course.code for a in self.unstarted)


def open_assignments(user: User) -> list[CourseAssignment]:
    return list(
        db.session.scalars(
            select(CourseAssignment)
            .options(joinedload(CourseAssignment.course))
            .where(CourseAssignment.user_id == user.id, CourseAssignment.archived_at.is_(None))
            .order_by(CourseAssignment.assigned_at, CourseAssignment.id)
        )
    )


def archive_plan(user: User) -> ArchivePlan:
    plan = ArchivePlan()
    for assignment in open_assignments(user):
        (plan.unstarted if assignment.state == "assigned" else plan.started).append(assignment)
    return plan


def archive(user: User, mode: str) -> ArchivePlan:
    """mode "user": archive the user and their open records; "activity": the records only.

    Unstarted records return their seat; started and completed ones keep it (used).
    """
    if mode not in ("user", "activity"):
        raise DomainError("Choose whether to archive the user or only their course activity.")
    if mode == "user" and user.status == "archived":
        raise DomainError(f"{user.name} is already archived.")
    plan = archive_plan(user)
    reason = "user_archived" if mode == "user" else "activity_archived"
    for assignment in plan.unstarted + plan.started:
        archive_activity(assignment, reason)
    if mode == "user":
        user.status = "archived"
        user.archived_at = utcnow()
        user.end_sessions()
    return plan


def restore(user: User) -> bool:
    """An archived user becomes active again; their archived records stay archived."""
    if user.status != "archived":
        return False
    user.status = "active"
    user.archived_at = None
    if user.approved_at is None:
        user.approved_at = utcnow()
    return True


def set_groups(user: User, groups: list[Group]) -> tuple[list[Group], list[Group]]:
    """Replace the user's groups; returns (added, removed)."""
    current = {g.id: g for g in user.groups}
    wanted = {g.id: g for g in groups}
    added = [g for gid, g in wanted.items() if gid not in current]
    removed = [g for gid, g in current.items() if gid not in wanted]
    user.groups = sorted(wanted.values(), key=lambda g: g.name.lower())
    return added, removed


def unarchive_user(user: User, status: str) -> None:
    """Undo archiving a user: back to the status they had (pending or active)."""
    if user.status != "archived":
        raise DomainError(f"{user.name} is no longer archived.")
    user.status = status
    user.archived_at = None
