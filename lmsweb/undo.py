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
from sqlalchemy import select

from . import audit, licensing, lifecycle, scope
from .domain_error import DomainError
from .extensions import db
from .models import AuditEvent, CourseAssignment, Group, User

# The toast shows Undo for 15 s; the token stays good a little longer for a slow click.
MAX_AGE_SECONDS = 120


@dataclass
class Undone:
    message: str
    user: User


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
    reversals = db.session.scalars(
        select(AuditEvent.details).where(
            AuditEvent.action == "undo",
            AuditEvent.target_user_id == event.target_user_id,
            AuditEvent.id > event.id,
        )
    )
    return any((details or {}).get("reverses") == event.id for details in reversals)


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


REVERSALS = {
    "assignment_archive": _undo_assignment_archive,
    "user_archive": _undo_user_archive,
    "groups": _undo_groups,
}
