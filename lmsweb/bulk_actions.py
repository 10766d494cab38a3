"""Bulk actions on the Users list: a registry of actions, each a function over a query.

The selection is either the checked ids or everyone the list's filter matches (the filter
is re-run here, so thousands of ids never travel). Every target is re-checked against the
action's rule; the result says what was done and what was skipped and why. Functions
flush but never commit: the view commits once, together with the ONE audit event that
`run` records with the affected ids.

The per-user rules are those of lifecycle, licensing and notifications. Where a rule is a
plain condition on a row (approve, due dates, group membership), it is applied as one
set-based UPDATE/INSERT per chunk of ids with the condition in its WHERE clause, so 10,000
users do not mean 10,000 flushes; seats are still taken only through licensing.take_seats.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Select, delete, insert, select, update

from . import audit, enrolment, licensing, lifecycle, notifications, scope
from .domain_error import DomainError
from .extensions import db
from .licensing import NoSeatsAvailable
from .models import Course, CourseAssignment, Group, User, user_groups, utcnow
from .user_queries import UserFilters, filtered_users

CHUNK = 500  # ids per statement: far below SQLite's and PostgreSQL's parameter limits


def chunks(items: list[int], size: int = CHUNK) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class Selection:
    """The checked ids, or everyone matching the list's filters."""

    ids: list[int] | None = None
    filters: UserFilters | None = None

    @property
    def matching(self) -> bool:
        return self.filters is not None

    def query(self) -> Select[tuple[User]]:
        if self.filters is not None:
            query = filtered_users(self.filters)
        else:
            query = select(User).where(User.id.in_(self.ids or []))
        if (rule := scope.current_rule()) is not None:
            # Each checked id is re-checked against the scope (an id outside it reads as one
            # that does not exist), and a scoped administrator never acts on administrators.
            query = query.where(scope.user_condition(rule), User.role != "admin")
        return query

    def describe(self) -> dict[str, Any]:
        if self.filters is None:
            return {"selection": "checked", "requested": len(self.ids or [])}
        f = self.filters
        return {
            "selection": "matching",
            "filters": {
                "q": f.q,
                "location": f.location,
                "group": f.group,
                "status": f.status,
                "role": f.role,
                "course": f.course,
                "course_state": f.course_state,
            },
        }


@dataclass
class Params:
    """The action's own fields, already validated by the view."""

    actor: User | None = None
    group: Group | None = None
    course: Course | None = None
    due_date: date | None = None
    fit: bool = False  # license-consuming: assign only as many as there are seats


@dataclass
class Result:
    action: str
    done: list[int] = field(default_factory=list)
    skipped: dict[str, list[int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    verb: str = "Done for"
    # What lmsweb.undo needs to reverse it (kept in the audit event's details, server-side,
    # so "select all matching" offers Undo without sending the ids to the page).
    undo: dict[str, Any] | None = None
    event: Any = None  # the audit event `run` recorded

    def skip(self, reason: str, user_id: int) -> None:
        self.skipped.setdefault(reason, []).append(user_id)

    @property
    def skipped_count(self) -> int:
        return sum(len(ids) for ids in self.skipped.values())

    def summary(self) -> str:
        parts = [f"{self.verb} {_users(len(self.done))}."]
        parts += self.notes
        if self.skipped:
            reasons = "; ".join(f"{len(ids)} {reason}" for reason, ids in self.skipped.items())
            parts.append(f"Skipped {self.skipped_count}: {reasons}.")
        return " ".join(parts)


@dataclass(frozen=True)
class LicenseImpact:
    """What a license-consuming action would take, shown before it runs."""

    course: Course
    targets: int
    needed: int
    available: int
    skipped: dict[str, int]
    # "No licenses left for Lisbon on FIRE-101: …": locations whose allocation holds some back.
    limits: tuple[str, ...] = ()

    @property
    def fits(self) -> bool:
        return self.needed <= self.available

    def text(self) -> str:
        return (
            f"Assign {self.course.code} to {_users(self.needed)}: needs {self.needed} "
            f"{'seat' if self.needed == 1 else 'seats'}, {self.available} available."
        )


def _users(n: int) -> str:
    return f"{n} {'user' if n == 1 else 'users'}"


def _target_rows(selection: Selection, *columns) -> list:
    """Re-read the targets (in list order), so every rule is checked on current data."""
    query = selection.query().with_only_columns(User.id, *columns)
    return list(db.session.execute(query.order_by(User.last_name, User.first_name, User.id)))


def _missing(selection: Selection, found: Iterable[int], result: Result) -> None:
    if selection.ids is not None:
        seen = set(found)
        for user_id in dict.fromkeys(selection.ids):
            if user_id not in seen:
                result.skip("no longer exist", user_id)


# --- approve and notify ------------------------------------------------------------------


NOTIFY_COLUMNS = (User.status, User.email, User.first_name, User.last_name, User.password_hash)


def approve(selection: Selection, params: Params) -> Result:
    """lifecycle.approve for many: pending → active; active and archived are skipped."""
    result = Result("approve", verb="Approved")
    rows = _target_rows(selection, User.status)
    _missing(selection, (r.id for r in rows), result)
    _approve_rows(rows, result)
    return result


def _approve_rows(rows: list, result: Result) -> None:
    pending = []
    for row in rows:
        if row.status == "pending":
            pending.append(row.id)
        elif row.status == "active":
            result.skip("already approved", row.id)
        else:
            result.skip("archived (restore them first)", row.id)
    now = utcnow()
    for ids in chunks(pending):
        changed = db.session.execute(
            update(User)
            .where(User.id.in_(ids), User.status == "pending")
            .values(status="active", approved_at=now)
            .returning(User.id)
            .execution_options(synchronize_session=False)
        ).scalars()
        result.done.extend(changed)
    _expire_users(result.done)


def notify(selection: Selection, params: Params) -> Result:
    """Queue the invitation (or a sign-in reminder) for every target that may get email."""
    result = Result("notify", verb="Queued an invitation to")
    rows = _target_rows(selection, *NOTIFY_COLUMNS)
    _missing(selection, (r.id for r in rows), result)
    _notify_rows(rows, result)
    return result


def _notify_rows(rows: list, result: Result) -> None:
    invitations = notifications.queue_invitations(rows)
    for user_id in invitations.archived:
        result.skip("archived (archived users get no email)", user_id)
    for user_id in invitations.unusable:
        result.skip("with an unusable email address", user_id)
    result.done.extend(invitations.queued)


def approve_notify(selection: Selection, params: Params) -> Result:
    """Approve the pending targets, then notify them all (archived ones get neither).

    The targets are read once, before approving: a filter on "pending" must not lose
    the users it has just approved."""
    rows = _target_rows(selection, *NOTIFY_COLUMNS)
    approved = Result("approve")
    _approve_rows(rows, approved)
    verb = f"Approved {_users(len(approved.done))} and queued an invitation to"
    result = Result("approve_notify", verb=verb)
    _missing(selection, (r.id for r in rows), result)
    _notify_rows(rows, result)
    return result


def _expire_users(ids: Iterable[int]) -> None:
    """Set-based UPDATEs bypass the identity map: forget stale copies of those users."""
    for user_id in ids:
        user = db.session.identity_map.get((User, (user_id,), None))
        if user is not None:
            db.session.expire(user)


# --- groups -----------------------------------------------------------------------------


def _members(group: Group, ids: list[int]) -> set[int]:
    found: set[int] = set()
    for part in chunks(ids):
        found.update(
            db.session.scalars(
                select(user_groups.c.user_id).where(
                    user_groups.c.group_id == group.id, user_groups.c.user_id.in_(part)
                )
            )
        )
    return found


def _membership(selection: Selection, params: Params, add: bool) -> Result:
    """Add the targets to a group, or remove them (lifecycle.set_groups' rule: a
    membership once); those already in (or not in) it are skipped."""
    group = _required(params.group, "Choose a group.")
    if add:
        result = Result("add_group", verb=f"Added to {group.name}:")
    else:
        result = Result("remove_group", verb=f"Removed from {group.name}:")
    rows = _target_rows(selection)
    _missing(selection, (r.id for r in rows), result)
    members = _members(group, [r.id for r in rows])
    for row in rows:
        if (row.id in members) != add:
            result.done.append(row.id)
        else:
            result.skip(f"already in {group.name}" if add else f"not in {group.name}", row.id)
    for ids in chunks(result.done):
        if add:
            db.session.execute(
                insert(user_groups), [{"user_id": uid, "group_id": group.id} for uid in ids]
            )
        else:
            db.session.execute(
                delete(user_groups).where(
                    user_groups.c.group_id == group.id, user_groups.c.user_id.in_(ids)
                )
            )
    _expire_groups(result.done)
    result.undo = {"group": group.id, "users": list(result.done)}
    if add:
        assigned, waiting = enrolment.users_joined(result.done, params.actor)
        if assigned or waiting:
            result.notes.append(
                f"Enrolment rules assigned {assigned} courses"
                + (f"; {waiting} wait for a license." if waiting else ".")
            )
    return result


def add_group(selection: Selection, params: Params) -> Result:
    return _membership(selection, params, add=True)


def remove_group(selection: Selection, params: Params) -> Result:
    return _membership(selection, params, add=False)


def _expire_groups(ids: Iterable[int]) -> None:
    for user_id in ids:
        user = db.session.identity_map.get((User, (user_id,), None))
        if user is not None:
            db.session.expire(user, ["groups"])


# --- courses ----------------------------------------------------------------------------


def _open_assignments(course: Course, ids: list[int]) -> dict[int, tuple[int, str]]:
    """user id → (assignment id, state) of the open record of `course`."""
    found: dict[int, tuple[int, str]] = {}
    for part in chunks(ids):
        rows = db.session.execute(
            select(CourseAssignment.user_id, CourseAssignment.id, CourseAssignment.state).where(
                CourseAssignment.course_id == course.id,
                CourseAssignment.archived_at.is_(None),
                CourseAssignment.user_id.in_(part),
            )
        )
        found.update({r.user_id: (r.id, r.state) for r in rows})
    return found


def _assign_plan(selection: Selection, course: Course) -> tuple[list[int], Result]:
    """Who can be assigned `course` (in list order) and who cannot, and why."""
    result = Result("assign_course", verb=f"Assigned {course.code} to")
    rows = _target_rows(selection, User.status)
    _missing(selection, (r.id for r in rows), result)
    assigned = _open_assignments(course, [r.id for r in rows if r.status != "archived"])
    eligible = []
    for row in rows:
        if row.status == "archived":
            result.skip("archived (restore them first)", row.id)
        elif row.id in assigned:
            result.skip(f"already assigned {course.code}", row.id)
        else:
            eligible.append(row.id)
    return eligible, result


def license_impact(selection: Selection, params: Params) -> LicenseImpact:
    course = _required(params.course, "Choose a course.")
    eligible, plan = _assign_plan(selection, course)
    db.session.refresh(course)
    allowed = licensing.preview_allocations(course, eligible)
    return LicenseImpact(
        course=course,
        targets=len(eligible) + plan.skipped_count,
        needed=len(eligible),
        # As many as "Assign only N (as many as fit)" would assign.
        available=min(course.seats_available, len(allowed.fit))
        if allowed.over
        else course.seats_available,
        skipped={reason: len(ids) for reason, ids in plan.skipped.items()},
        limits=tuple(allowed.messages.values()),
    )


def assign_course(selection: Selection, params: Params) -> Result:
    """Assign a course to every eligible target, or to none; with `fit`, only as many as
    there are seats (the first in list order) and the rest are reported as skipped.
    The seats are taken at once by licensing.take_seats (one conditional UPDATE)."""
    course = _required(params.course, "Choose a course.")
    # Locked in licensing's order before the plan is read, so the plan stays true.
    licensing.lock_users([r.id for r in _target_rows(selection)], share=True)
    licensing.lock_courses([course.id])
    eligible, result = _assign_plan(selection, course)
    db.session.refresh(course)
    if params.fit:
        # A location's allocation may be full while the pool is not: skip its people.
        allowed = licensing.fit_allocations(course, eligible)
        for user_id in allowed.over:
            result.skip(f"no {course.code} license left for their location", user_id)
        eligible = allowed.fit
    available = course.seats_available
    if len(eligible) > available:
        if not params.fit:
            raise NoSeatsAvailable(
                f"Assign {course.code} to {_users(len(eligible))}: needs {len(eligible)} "
                f"seats, {available} available. Nothing was assigned."
            )
        for user_id in eligible[available:]:
            result.skip(f"no {course.code} license left", user_id)
        eligible = eligible[:available]
    licensing.take_seats(course, eligible)
    now = utcnow()
    actor_id = params.actor.id if params.actor else None
    for ids in chunks(eligible):
        db.session.execute(
            insert(CourseAssignment),
            [
                {
                    "user_id": uid,
                    "course_id": course.id,
                    "assigned_by_id": actor_id,
                    "assigned_at": now,
                    "due_date": params.due_date,
                    "state": "assigned",
                }
                for uid in ids
            ],
        )
    result.done = eligible
    # The new records (one open record per user and course): what an undo unassigns.
    records: list[int] = []
    for ids in chunks(eligible):
        records.extend(
            db.session.scalars(
                select(CourseAssignment.id).where(
                    CourseAssignment.course_id == course.id,
                    CourseAssignment.archived_at.is_(None),
                    CourseAssignment.user_id.in_(ids),
                )
            )
        )
    result.undo = {"course": course.id, "records": records}
    if params.due_date:
        result.notes.append(f"Due {params.due_date.isoformat()}.")
    return result


def change_due_date(selection: Selection, params: Params) -> Result:
    """licensing.change_due_date for many: open, not completed records of the course."""
    course = _required(params.course, "Choose a course.")
    due = params.due_date.isoformat() if params.due_date else "none"
    result = Result("change_due_date", verb=f"Changed the {course.code} due date to {due} for")
    rows = _target_rows(selection)
    _missing(selection, (r.id for r in rows), result)
    records = _open_assignments(course, [r.id for r in rows])
    changing = []
    for row in rows:
        record = records.get(row.id)
        if record is None:
            result.skip(f"not assigned {course.code}", row.id)
        elif record[1] == "completed":
            result.skip(f"already completed {course.code}", row.id)
        else:
            changing.append(record[0])
            result.done.append(row.id)
    before: list[list] = []
    for ids in chunks(changing):
        before.extend(
            [r.id, r.due_date.isoformat() if r.due_date else None]
            for r in db.session.execute(
                select(CourseAssignment.id, CourseAssignment.due_date).where(
                    CourseAssignment.id.in_(ids)
                )
            )
        )
    result.undo = {"course": course.id, "due": due if params.due_date else None, "records": before}
    for ids in chunks(changing):
        db.session.execute(
            update(CourseAssignment)
            .where(
                CourseAssignment.id.in_(ids),
                CourseAssignment.archived_at.is_(None),
                CourseAssignment.state != "completed",
            )
            .values(due_date=params.due_date)
            .execution_options(synchronize_session=False)
        )
    return result


# --- archive and restore (per user, through lifecycle) ------------------------------------


def _target_users(selection: Selection) -> Iterator[User]:
    rows = _target_rows(selection)
    for ids in chunks([r.id for r in rows]):
        users = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(ids)))}
        for user_id in ids:
            if user_id in users:
                yield users[user_id]


def archive_user(selection: Selection, params: Params) -> Result:
    """lifecycle.archive(user, "user") for each target; unstarted seats return."""
    result = Result("archive_user", verb="Archived")
    returned = 0
    found = []
    lifecycle.lock_for_archive([r.id for r in _target_rows(selection)])
    undone: list[dict[str, Any]] = []
    for user in _target_users(selection):
        found.append(user.id)
        db.session.refresh(user, ["status"])
        status = user.status
        try:
            plan = lifecycle.archive_locked(user, "user", actor=params.actor)
        except lifecycle.ArchivingYourself:
            result.skip("is you (you cannot archive yourself)", user.id)
        except lifecycle.AlreadyArchived:
            result.skip("already archived", user.id)
        else:
            returned += len(plan.unstarted)
            result.done.append(user.id)
            undone.append(_archived(user, plan, status))
    result.undo = {"users": undone}
    _missing(selection, found, result)
    result.notes.append(f"{returned} {'license' if returned == 1 else 'licenses'} returned.")
    return result


def archive_activity(selection: Selection, params: Params) -> Result:
    """Archive the targets' open training records (of one course, or all of them)."""
    course = params.course
    what = f"{course.code} activity" if course else "course activity"
    result = Result("archive_activity", verb=f"Archived the {what} of")
    returned = 0
    found = []
    course_id = course.id if course else None
    undone: list[dict[str, Any]] = []
    lifecycle.lock_for_archive([r.id for r in _target_rows(selection)], course_id)
    for user in _target_users(selection):
        found.append(user.id)
        try:
            plan = lifecycle.archive_locked(user, "activity", course_id=course_id)
        except DomainError:
            result.skip(f"have no open {what}", user.id)
            continue
        returned += len(plan.unstarted)
        result.done.append(user.id)
        undone.append(_archived(user, plan))
    result.undo = {"users": undone}
    _missing(selection, found, result)
    result.notes.append(f"{returned} {'license' if returned == 1 else 'licenses'} returned.")
    return result


def _archived(user: User, plan: lifecycle.ArchivePlan, status: str | None = None) -> dict:
    """One user's part of an archive's undo: their records as archived (and, archiving the
    user, the status they had), checked again before anything is reopened."""
    from .undo import stamp

    item: dict[str, Any] = {
        "user": user.id,
        "records": [[a.id, stamp(a.archived_at)] for a in plan.unstarted + plan.started],
    }
    if status is not None:
        item["status"] = status
        item["at"] = stamp(user.archived_at)
    return item


def restore(selection: Selection, params: Params) -> Result:
    """lifecycle.restore for each target; their archived records stay archived."""
    result = Result("restore", verb="Restored")
    found = []
    licensing.lock_users([r.id for r in _target_rows(selection)])
    for user in _target_users(selection):
        found.append(user.id)
        if lifecycle.restore(user):
            result.done.append(user.id)
        else:
            result.skip("not archived", user.id)
    _missing(selection, found, result)
    return result


def _required(value, message: str):
    if value is None:
        raise DomainError(message)
    return value


# --- reminders --------------------------------------------------------------------------


def remind(selection: Selection, params: Params) -> Result:
    """Queue a reminder now to each target with unfinished training (one email each)."""
    from .schedule import remind_now

    result = Result("remind", verb="Reminded:")
    rows = _target_rows(selection)
    _missing(selection, (r.id for r in rows), result)
    done, nothing = remind_now([r.id for r in rows])
    result.done.extend(done)
    for user_id in nothing:
        result.skip("not active, or nothing unfinished", user_id)
    return result


# --- the registry -----------------------------------------------------------------------


def is_admin(user: User | None) -> bool:
    return bool(user is not None and getattr(user, "is_admin", False))


@dataclass(frozen=True)
class BulkAction:
    name: str
    label: str
    confirm: str  # shown before destructive / license-consuming actions; {count} users
    run: Callable[[Selection, Params], Result] | None
    fields: tuple[str, ...] = ()  # "group", "course", "due_date"
    required: tuple[str, ...] = ()
    destructive: bool = False
    consumes_licenses: bool = False
    permission: Callable[[User | None], bool] = is_admin

    @property
    def needs_confirmation(self) -> bool:
        return self.destructive or self.consumes_licenses


ACTIONS: dict[str, BulkAction] = {
    a.name: a
    for a in (
        BulkAction("approve", "Approve", "Approve {count}?", approve),
        BulkAction("notify", "Notify (send invitation)", "Notify {count}?", notify),
        BulkAction(
            "approve_notify", "Approve & notify", "Approve and notify {count}?", approve_notify
        ),
        BulkAction(
            "add_group",
            "Add to group",
            "Add {count} to a group?",
            add_group,
            ("group",),
            ("group",),
        ),
        BulkAction(
            "remove_group",
            "Remove from group",
            "Remove {count} from a group?",
            remove_group,
            ("group",),
            ("group",),
        ),
        BulkAction(
            "assign_course",
            "Assign course",
            "Assign a course to {count}?",
            assign_course,
            ("course", "due_date"),
            ("course",),
            consumes_licenses=True,
        ),
        BulkAction(
            "change_due_date",
            "Change due date",
            "Change the due date for {count}?",
            change_due_date,
            ("course", "due_date"),
            ("course",),
        ),
        BulkAction(
            "archive_user",
            "Archive user",
            "Archive {count}? They can no longer sign in and get no email; unstarted courses "
            "return their licenses; training records are kept.",
            archive_user,
            destructive=True,
        ),
        BulkAction(
            "archive_activity",
            "Archive course activity",
            "Archive the open course activity of {count}? Unstarted courses return their "
            "licenses; the users stay active and records are kept.",
            archive_activity,
            ("course",),
            destructive=True,
        ),
        BulkAction("restore", "Restore", "Restore {count}?", restore),
        BulkAction("remind", "Remind", "Send {count} a reminder now?", remind),
        BulkAction("export", "Export selected", "Export {count}?", None),
    )
}


def count_targets(selection: Selection) -> int:
    from sqlalchemy import func

    query = selection.query().with_only_columns(User.id).order_by(None)
    return db.session.scalar(select(func.count()).select_from(query.subquery())) or 0


def run(action: BulkAction, selection: Selection, params: Params) -> Result:
    """Run an action and record ONE audit event with the affected ids (caller commits)."""
    if not action.permission(params.actor):
        raise DomainError("You are not allowed to do that.")
    if action.run is None:
        raise DomainError(f"{action.label} is not an action that changes users.")
    result = action.run(selection, params)
    db.session.flush()
    details: dict[str, Any] = {
        "action": action.name,
        **selection.describe(),
        "done": result.done,
        "skipped": result.skipped,
    }
    if params.group is not None:
        details["group_id"] = params.group.id
    if params.course is not None:
        details["course_id"] = params.course.id
    if params.due_date is not None:
        details["due_date"] = params.due_date.isoformat()
    if params.fit:
        details["fit"] = True
    if result.undo is not None and result.done:
        details["undo"] = result.undo
    result.event = audit.record(
        f"bulk.{action.name}", summary=result.summary(), details=details, actor=params.actor
    )
    return result
