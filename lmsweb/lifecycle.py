"""A user's life: approve, archive (user or course activity only), restore, groups.

Functions flush but never commit; each returns what it changed so the caller can audit
and tell the administrator.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from .domain_error import DomainError
from .extensions import db
from .licensing import archive_activity, lock_courses, lock_users, row_locks
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


class ArchivingYourself(DomainError):
    pass


class AlreadyArchived(DomainError):
    pass


OWN_ROLE = "You cannot remove your own administrator role."
LAST_ADMIN = "This is the last administrator; make someone else one first."


def role_change_refusal(
    user_id: int | None,
    current: str,
    new: str,
    actor_id: int | None,
    other_admins: Callable[[], int],
) -> str | None:
    """Why a user may not go from role `current` to `new`, or None. Nobody demotes
    themselves, and the last administrator stays one; `other_admins()` counts the active
    and pending administrators left besides this user (asked only for a demotion)."""
    if current != "admin" or new == "admin":
        return None
    if user_id is not None and user_id == actor_id:
        return OWN_ROLE
    if other_admins() <= 0:
        return LAST_ADMIN
    return None


def other_admins(user_id: int) -> int:
    """Administrators besides `user_id` who are not archived."""
    return db.session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.role == "admin", User.status != "archived", User.id != user_id)
    )


@dataclass
class ArchivePlan:
    """What archiving would do: shown before, and returned after."""

    unstarted: list[CourseAssignment] = field(default_factory=list)
    started: list[CourseAssignment] = field(default_factory=list)

    @property
    def seats_returned(self) -> Counter[str]:
        return Counter(a.course.code for a in self.unstarted)


def open_assignments(user: User, course_id: int | None = None) -> list[CourseAssignment]:
    query = (
        select(CourseAssignment)
        .options(joinedload(CourseAssignment.course))
        .where(CourseAssignment.user_id == user.id, CourseAssignment.archived_at.is_(None))
        .order_by(CourseAssignment.assigned_at, CourseAssignment.id)
        # Read after the locks are taken: what is in the session may be stale.
        .execution_options(populate_existing=True)
    )
    if course_id is not None:
        query = query.where(CourseAssignment.course_id == course_id)
    return list(db.session.scalars(query))


def archive_plan(user: User, course_id: int | None = None) -> ArchivePlan:
    plan = ArchivePlan()
    for assignment in open_assignments(user, course_id):
        (plan.unstarted if assignment.state == "assigned" else plan.started).append(assignment)
    return plan


def lock_for_archive(user_ids: list[int], course_id: int | None = None) -> None:
    """Lock the users, then the pools of their open records (the order of licensing), so
    no record is assigned, started or unassigned while they are archived."""
    if not row_locks():
        return
    lock_users(user_ids)
    if course_id is not None:
        lock_courses([course_id])
        return
    courses: set[int] = set()
    for start in range(0, len(user_ids), 5000):
        courses.update(
            db.session.scalars(
                select(CourseAssignment.course_id)
                .where(
                    CourseAssignment.user_id.in_(user_ids[start : start + 5000]),
                    CourseAssignment.archived_at.is_(None),
                )
                .distinct()
            )
        )
    lock_courses(courses)


def archive(
    user: User, mode: str, actor: User | None = None, course_id: int | None = None
) -> ArchivePlan:
    """mode "user": archive the user and their open records; "activity": the records only
    (of one course with `course_id`). Nobody archives their own account (`actor`: who asks).

    Unstarted records return their seat; started and completed ones keep it (used).
    """
    lock_for_archive([user.id], course_id)
    return archive_locked(user, mode, actor, course_id)


def archive_locked(
    user: User, mode: str, actor: User | None = None, course_id: int | None = None
) -> ArchivePlan:
    """archive() for a caller that holds lock_for_archive already (a bulk action)."""
    if mode not in ("user", "activity"):
        raise DomainError("Choose whether to archive the user or only their course activity.")
    if mode == "user" and actor is not None and user.id == actor.id:
        raise ArchivingYourself("You cannot archive your own account.")
    db.session.refresh(user, ["status", "archived_at"])
    if mode == "user" and user.status == "archived":
        raise AlreadyArchived(f"{user.name} is already archived.")
    plan = archive_plan(user, course_id)
    if mode == "activity" and not plan.unstarted + plan.started:
        raise DomainError(f"{user.name} has no open training records to archive.")
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
    lock_users([user.id])
    db.session.refresh(user, ["status", "archived_at", "approved_at"])
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
    lock_users([user.id])
    db.session.refresh(user, ["status", "archived_at"])
    if user.status != "archived":
        raise DomainError(f"{user.name} is no longer archived.")
    user.status = status
    user.archived_at = None
