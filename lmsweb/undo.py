"""Undo, not "are you sure": a reversible action answers with a toast whose Undo button
posts back a signed token naming the audit event it reverses.

The token carries what the action changed, so the reversal restores exactly that prior
state, through the same domain functions (seats included), or refuses with the reason if
anything changed since. Nothing is deleted: undoing an archive un-archives. The reversal
is an audit event of its own ("undo", details.reverses = the event's id), and an event is
reversed at most once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app, url_for
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import delete, func, insert, select, update

from . import audit, licensing, lifecycle, scope
from .domain_error import DomainError
from .extensions import db
from .models import AuditEvent, Course, CourseAssignment, Group, User, user_groups, utcnow

# The toast shows Undo for 15 s; the token stays good a little longer for a slow click.
MAX_AGE_SECONDS = 120


@dataclass
class Undone:
    message: str
    user: User | None  # None: a bulk action's undo (the list is refreshed instead of a row)


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="lmsweb-undo")


def stamp(moment: datetime | None) -> str | None:
    return moment.replace(microsecond=0).isoformat() if moment else None


def offer(event: AuditEvent, kind: str, actor: User | None, **data: Any) -> dict[str, Any]:
    """The toast's undo payload for `event` (flushed here so it has an id)."""
    db.session.flush()
    token = _serializer().dumps(
        {"e": event.id, "k": kind, "a": actor.id if actor else None, "d": data}
    )
    return {"url": url_for("users.undo_change"), "token": token, "user": event.target_user_id}


def archived_assignment(assignment: CourseAssignment) -> dict[str, Any]:
    return {"assignment": assignment.id, "at": stamp(assignment.archived_at)}


def _already_undone(event: AuditEvent) -> bool:
    # The reversal names its event as its target (a bulk action's has no target user).
    return bool(
        db.session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(
                AuditEvent.action == "undo",
                AuditEvent.id > event.id,
                AuditEvent.target_type == "auditevent",
                AuditEvent.target_id == event.id,
            )
        )
    )


def perform(token: str, actor: User) -> Undone:
    """Reverse the event the token names; raises DomainError with the reason it cannot."""
    try:
        data = _serializer().loads(token, max_age=MAX_AGE_SECONDS)
    except SignatureExpired:
        raise DomainError("Too late to undo that; change it back by hand.") from None
    except BadSignature:
        raise DomainError("That undo is not valid.") from None
    if data.get("a") != actor.id:
        raise DomainError("Only the administrator who made the change can undo it here.")
    event = db.session.get(AuditEvent, data.get("e"))
    if event is None:
        raise DomainError("That change is not on the audit trail.")
    if _already_undone(event):
        raise DomainError("That change has already been undone.")
    reverse = REVERSALS.get(data.get("k"))
    if reverse is None:
        raise DomainError("That change cannot be undone.")
    undone = reverse(event, data["d"])
    audit.record(
        "undo",
        target=event,
        target_user=undone.user,
        actor=actor,
        summary=f"Undone: {event.summary}",
        details={"reverses": event.id, "reverses_action": event.action},
    )
    return undone


def _user(event: AuditEvent) -> User:
    user = db.session.get(User, event.target_user_id)
    if user is None or scope.may_act_on(user) == scope.OUT_OF_SCOPE:
        raise DomainError("That user no longer exists.")
    if refusal := scope.may_act_on(user):
        raise DomainError(refusal)
    return user


def _reopen(user: User, items: list[dict[str, Any]]) -> list[CourseAssignment]:
    """Un-archive the records exactly as archived then; all or nothing (the caller rolls back)."""
    assignments = []
    for item in items:
        assignment = db.session.get(CourseAssignment, item["assignment"])
        if assignment is None or assignment.user_id != user.id:
            raise DomainError("That training record is gone.")
        assignments.append(assignment)
    # All the pools up front, in licensing's order (by id): two undos never wait on each other.
    licensing.lock_users([user.id], share=True)
    licensing.lock_courses([a.course_id for a in assignments])
    reopened = []
    for item, assignment in zip(items, assignments, strict=True):
        db.session.refresh(assignment, ["archived_at"])
        if stamp(assignment.archived_at) != item["at"]:
            raise DomainError(
                f"{user.name}'s {assignment.course.code} record has changed since; "
                "nothing was undone."
            )
        licensing.unarchive(assignment)
        reopened.append(assignment)
    return reopened


def _undo_assignment_archive(event: AuditEvent, data: dict[str, Any]) -> Undone:
    user = _user(event)
    (assignment,) = _reopen(user, [data])
    seat = "1 license taken again" if assignment.state == "assigned" else "its license stays used"
    return Undone(f"Undone: {assignment.course.code} is back for {user.name}; {seat}.", user)


def _undo_user_archive(event: AuditEvent, data: dict[str, Any]) -> Undone:
    user = _user(event)
    if data["mode"] == "user":
        # The user before any pool (licensing's lock order), read again under the lock.
        licensing.lock_users([user.id])
        db.session.refresh(user, ["status", "archived_at"])
        if user.status != "archived" or stamp(user.archived_at) != data["at"]:
            raise DomainError(f"{user.name} has changed since; nothing was undone.")
        lifecycle.unarchive_user(user, data["status"])
    reopened = _reopen(user, data["records"])
    what = f"{user.name} is {user.status} again" if data["mode"] == "user" else user.name
    return Undone(f"Undone: {what}; {len(reopened)} training records reopened.", user)


def _undo_groups(event: AuditEvent, data: dict[str, Any]) -> Undone:
    user = _user(event)
    if sorted(g.id for g in user.groups) != sorted(data["after"]):
        raise DomainError(f"{user.name}'s groups have changed since; nothing was undone.")
    before = list(db.session.scalars(select(Group).where(Group.id.in_(data["before"]))))
    if len(before) != len(data["before"]):
        raise DomainError("A group has been deleted since; nothing was undone.")
    lifecycle.set_groups(user, before)
    names = ", ".join(g.name for g in before) or "no groups"
    return Undone(f"Undone: {user.name} is back in {names}.", user)


# --- bulk actions: what they changed is in their audit event's details["undo"] ----------


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _bulk_users(ids: list[int]) -> dict[int, User]:
    users: dict[int, User] = {}
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        users.update(
            (u.id, u)
            for u in db.session.scalars(
                select(User).where(User.id.in_(part)).execution_options(populate_existing=True)
            )
        )
    if len(users) != len(set(ids)):
        raise DomainError("Some of those users no longer exist; nothing was undone.")
    return users


def _undo_bulk_archive(data: dict[str, Any], mode: str) -> str:
    """Un-archive the users (back to the status each had) and reopen their records, all
    or nothing: every pool is locked up front, users before pools (licensing's order)."""
    items = data["users"]
    users = _bulk_users([item["user"] for item in items])
    licensing.lock_users(sorted(users))
    record_ids = [r[0] for item in items for r in item["records"]]
    # Per course: how many of the records would take a license back (the unstarted ones).
    needed: dict[int, int] = {}
    for start in range(0, len(record_ids), 500):
        for course_id, state in db.session.execute(
            select(CourseAssignment.course_id, CourseAssignment.state).where(
                CourseAssignment.id.in_(record_ids[start : start + 500])
            )
        ):
            needed[course_id] = needed.get(course_id, 0) + (state == "assigned")
    licensing.lock_courses(sorted(needed))
    # Said for all the records at once, before any is reopened: "needs 2, 1 available"
    # rather than the last record's "needs 1, 0 available" when the pool ran short.
    for course in db.session.scalars(select(Course).where(Course.id.in_(needed))):
        db.session.refresh(course)
        if needed[course.id] > course.seats_available:
            raise DomainError(
                f"No licenses available for {course.code}: the undo needs "
                f"{needed[course.id]}, {course.seats_available} available; nothing was undone."
            )
    reopened = taken = 0
    for item in items:
        user = users[item["user"]]
        if mode == "user":
            db.session.refresh(user, ["status", "archived_at"])
            if user.status != "archived" or stamp(user.archived_at) != item["at"]:
                raise DomainError(f"{user.name} has changed since; nothing was undone.")
            lifecycle.unarchive_user(user, item["status"])
        records = [{"assignment": a, "at": at} for a, at in item["records"]]
        for assignment in _reopen(user, records):
            reopened += 1
            taken += assignment.state == "assigned"
    who = _plural(len(items), "user")
    what = f"{who} {'is' if len(items) == 1 else 'are'} back" if mode == "user" else who
    return (
        f"Undone: {what}; {_plural(reopened, 'training record')} reopened, "
        f"{_plural(taken, 'license')} taken again."
    )


def _bulk_group(data: dict[str, Any]) -> Group:
    group = db.session.get(Group, data["group"])
    if group is None:
        raise DomainError("That group has been deleted since; nothing was undone.")
    return group


def _members(group: Group, ids: list[int]) -> int:
    found = 0
    for start in range(0, len(ids), 500):
        found += db.session.scalar(
            select(func.count())
            .select_from(user_groups)
            .where(
                user_groups.c.group_id == group.id,
                user_groups.c.user_id.in_(ids[start : start + 500]),
            )
        )
    return found


def _undo_bulk_membership(data: dict[str, Any], added: bool) -> str:
    """Take the users out of the group again (or put them back). Courses an enrolment rule
    assigned on joining stay, as after a single user's groups are undone."""
    group = _bulk_group(data)
    ids = data["users"]
    users = _bulk_users(ids)
    licensing.lock_users(sorted(users), share=True)
    expected = len(ids) if added else 0
    if _members(group, ids) != expected:
        raise DomainError(f"Membership of {group.name} has changed since; nothing was undone.")
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        if added:
            db.session.execute(
                delete(user_groups).where(
                    user_groups.c.group_id == group.id, user_groups.c.user_id.in_(part)
                )
            )
        else:
            db.session.execute(
                insert(user_groups), [{"user_id": uid, "group_id": group.id} for uid in part]
            )
    for user in users.values():
        db.session.expire(user, ["groups"])
    where = f"out of {group.name} again" if added else f"back in {group.name}"
    return f"Undone: {_plural(len(ids), 'user')} {'is' if len(ids) == 1 else 'are'} {where}."


def _bulk_course(data: dict[str, Any]) -> Course:
    course = db.session.get(Course, data["course"])
    if course is None:
        raise DomainError("That course is gone; nothing was undone.")
    return course


def _undo_bulk_assign(data: dict[str, Any]) -> str:
    """Unassign the records the action created (archived as "unassigned", never deleted),
    returning their seats; refused if any has been started or archived since."""
    course = _bulk_course(data)
    ids = data["records"]
    owners = []
    for start in range(0, len(ids), 500):
        owners.extend(
            db.session.scalars(
                select(CourseAssignment.user_id).where(
                    CourseAssignment.id.in_(ids[start : start + 500])
                )
            )
        )
    licensing.lock_users(sorted(set(owners)), share=True)
    licensing.lock_courses([course.id])
    changed = None
    for start in range(0, len(ids), 500):
        changed = changed or db.session.scalar(
            select(User)
            .join(CourseAssignment, CourseAssignment.user_id == User.id)
            .where(
                CourseAssignment.id.in_(ids[start : start + 500]),
                (CourseAssignment.state != "assigned") | CourseAssignment.archived_at.is_not(None),
            )
            .limit(1)
        )
    if changed is not None or len(owners) != len(ids):
        who = changed.name if changed is not None else "A user"
        raise DomainError(f"{who} has started or left {course.code} since; nothing was undone.")
    now = utcnow()
    done = 0
    for start in range(0, len(ids), 500):
        done += db.session.execute(
            update(CourseAssignment)
            .where(
                CourseAssignment.id.in_(ids[start : start + 500]),
                CourseAssignment.state == "assigned",
                CourseAssignment.archived_at.is_(None),
            )
            .values(archived_at=now, archive_reason="unassigned")
            .execution_options(synchronize_session=False)
        ).rowcount
    if done != len(ids):
        raise DomainError(f"Some {course.code} records changed meanwhile; nothing was undone.")
    if done:
        licensing.release_seats(course, done)
    for item in list(db.session.identity_map.values()):
        if isinstance(item, CourseAssignment):
            db.session.expire(item, ["archived_at", "archive_reason"])
    return (
        f"Undone: {course.code} unassigned from {_plural(done, 'user')}; "
        f"{_plural(done, 'license')} returned (the records are kept, archived)."
    )


def _undo_bulk_due_dates(data: dict[str, Any]) -> str:
    """Put each record's due date back, if it still has the one the action set."""
    course = _bulk_course(data)
    new = datetime.fromisoformat(data["due"]).date() if data["due"] else None
    by_old: dict[str | None, list[int]] = {}
    for record, old in data["records"]:
        by_old.setdefault(old, []).append(record)
    done = 0
    for old, ids in by_old.items():
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            done += db.session.execute(
                update(CourseAssignment)
                .where(
                    CourseAssignment.id.in_(part),
                    CourseAssignment.due_date == new,
                    CourseAssignment.archived_at.is_(None),
                    CourseAssignment.state != "completed",
                )
                .values(due_date=datetime.fromisoformat(old).date() if old else None)
                .execution_options(synchronize_session=False)
            ).rowcount
    if done != len(data["records"]):
        raise DomainError(
            f"Some {course.code} records have changed since (due date, completed or "
            "archived); nothing was undone."
        )
    for item in list(db.session.identity_map.values()):
        if isinstance(item, CourseAssignment):
            db.session.expire(item, ["due_date"])
    return f"Undone: the {course.code} due dates of {_plural(done, 'record')} are back."


BULK_REVERSALS = {
    "archive_user": lambda data: _undo_bulk_archive(data, "user"),
    "archive_activity": lambda data: _undo_bulk_archive(data, "activity"),
    "add_group": lambda data: _undo_bulk_membership(data, added=True),
    "remove_group": lambda data: _undo_bulk_membership(data, added=False),
    "assign_course": _undo_bulk_assign,
    "change_due_date": _undo_bulk_due_dates,
}


def bulk_offer(event: AuditEvent, actor: User | None) -> dict[str, Any] | None:
    """The Undo of a bulk action, if it can have one (the data stays in the event)."""
    if (event.details or {}).get("action") not in BULK_REVERSALS:
        return None
    if "undo" not in event.details:
        return None
    return offer(event, "bulk", actor)


def _undo_bulk(event: AuditEvent, data: dict[str, Any]) -> Undone:
    details = event.details or {}
    reverse = BULK_REVERSALS.get(details.get("action"))
    if reverse is None or "undo" not in details:
        raise DomainError("That change cannot be undone.")
    return Undone(reverse(details["undo"]), None)


REVERSALS = {
    "assignment_archive": _undo_assignment_archive,
    "user_archive": _undo_user_archive,
    "groups": _undo_groups,
    "bulk": _undo_bulk,
}
