"""Roster import, applying: the preview's plan, checked again inside the transaction (or
made again when the database has changed since), then written in bulk."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from .. import audit
from ..domain_error import DomainError
from ..extensions import db
from ..licensing import NoSeatsAvailable, lock_users, take_seats
from ..models import Course, CourseAssignment, Group, ImportJob, Location, User, user_groups, utcnow
from .bulk import gc_paused, insert_rows, new_ids, update_rows
from .planning import Plan, _chunks, managers_by_email, member_of, plan_import, replan


def _ensure_named(model, wanted: dict[str, str]) -> dict[str, int]:
    existing = {n.lower(): i for i, n in db.session.execute(select(model.id, model.name))}
    missing = [
        {"name": name, "created_at": utcnow()}
        for key, name in wanted.items()
        if key not in existing
    ]
    if missing:
        db.session.execute(insert(model), missing)
        existing = {n.lower(): i for i, n in db.session.execute(select(model.id, model.name))}
    return existing


@gc_paused()
def apply(job: ImportJob, actor: User | None) -> dict[str, Any]:
    """Apply the valid rows of `job` in the caller's transaction: as previewed when nothing
    they rest on has changed since, else as planned again now.

    Raises NoSeatsAvailable (nothing changed) when a course lacks seats."""
    actor_id = actor.id if actor else None
    plan = replan(job.data, job.preview, job.create_missing, actor_id)
    if plan is not None:
        try:
            with db.session.begin_nested():
                return _write(job, plan, actor)
        except IntegrityError:
            # A user with the email or user ID of a row was added since the preview (the
            # unique indexes said so): plan the file again, against what is there now.
            pass
    plan = plan_import(job.data, job.create_missing, actor_id)
    job.preview = plan.preview()
    return _write(job, plan, actor)


def _write(job: ImportJob, plan: Plan, actor: User | None) -> dict[str, Any]:
    if plan.seat_shortfall:
        short = plan.seat_shortfall[0]
        raise NoSeatsAvailable(
            f"No licenses available for {short['code']}: needs {short['needed']}, "
            f"{short['available']} available. Nothing was imported."
        )
    # The users this import changes, locked before any pool (licensing's order); the plan
    # was read without locks, so what a concurrent request changed is checked below.
    lock_users([op["id"] for op in plan.updates])
    locations = _ensure_named(Location, plan.new_locations)
    groups = _ensure_named(Group, plan.new_groups)
    now = utcnow()
    # Ids taken up front, so nothing is read back by email after the insert.
    created_ids = new_ids(User.__table__, len(plan.creates))
    insert_rows(
        User.__table__,
        (
            {
                "id": user_id,
                "email": op["email"],
                "employee_id": op["employee_id"],
                "first_name": op["first_name"],
                "last_name": op["last_name"],
                "role": op["role"],
                "status": "pending",
                "location_id": locations.get(op["location"]) if op["location"] else None,
                "session_version": 1,
                "created_at": now,
            }
            for user_id, op in zip(created_ids, plan.creates, strict=True)
        ),
    )
    assignments: list[dict[str, Any]] = []
    course_days = dict(db.session.execute(select(Course.id, Course.default_due_days)).all())
    today = date.today()

    def assign_rows(user_id, course_ids):
        for course_id in course_ids:
            assignments.append(
                {
                    "user_id": user_id,
                    "course_id": course_id,
                    "assigned_by_id": actor.id if actor else None,
                    "assigned_at": now,
                    "due_date": today + timedelta(days=course_days[course_id]),
                    "state": "assigned",
                }
            )

    manager_of: dict[int, str] = {}
    for user_id, op in zip(created_ids, plan.creates, strict=True):
        if op["manager"]:
            manager_of[user_id] = op["manager"]
        assign_rows(user_id, op["courses"])

    regroup: list[int] = []
    role_changed: list[int] = []
    field_updates: list[dict[str, Any]] = []
    for op in plan.updates:
        values = {
            k: op[k] for k in ("email", "employee_id", "first_name", "last_name", "role") if k in op
        }
        if "location" in op:
            values["location_id"] = locations[op["location"]]
        if values:
            field_updates.append({"id": op["id"], **values})
        if "role" in op:
            role_changed.append(op["id"])
        if "manager" in op:
            manager_of[op["id"]] = op["manager"]
        if "groups" in op:
            regroup.append(op["id"])
        assign_rows(op["id"], op.get("courses", []))
    # Grouped by the columns they set: one UPDATE per shape (and batch).
    shapes: dict[tuple, list] = {}
    for values in field_updates:
        shapes.setdefault(tuple(sorted(values)), []).append(values)
    for batch in shapes.values():
        update_rows(User.__table__, batch)
    if manager_of:
        # After the creates: a manager may be a new user of this same file.
        ids_by_email = managers_by_email(set(manager_of.values()))
        update_rows(
            User.__table__,
            [{"id": uid, "manager_id": ids_by_email[m]} for uid, m in manager_of.items()],
        )
    for part in _chunks(role_changed):
        db.session.execute(
            update(User)
            .where(member_of(User.id, part))
            .values(session_version=User.session_version + 1)
            .execution_options(synchronize_session=False)
        )
    for part in _chunks(regroup):
        db.session.execute(delete(user_groups).where(member_of(user_groups.c.user_id, part)))
    insert_rows(user_groups, _group_links(created_ids, plan, groups))
    if assignments:
        _refuse_archived_meanwhile({a["user_id"] for a in assignments} - set(created_ids))
        needed: dict[int, list[int]] = {}
        for a in assignments:
            needed.setdefault(a["course_id"], []).append(a["user_id"])
        # Pools in id order, as everywhere, so racing requests never deadlock.
        for course in db.session.scalars(
            select(Course).where(Course.id.in_(list(needed))).order_by(Course.id)
        ):
            take_seats(course, needed[course.id])
        try:
            with db.session.begin_nested():
                insert_rows(CourseAssignment.__table__, assignments)
        except IntegrityError:
            raise DomainError(
                "Some of these courses were assigned by someone else while the import ran; "
                "nothing was imported. Apply the import again."
            ) from None

    # The enrolment rules' join hook, for everyone new or whose groups or location changed.
    from ..enrolment import users_joined

    joined = created_ids + [op["id"] for op in plan.updates if "groups" in op or "location" in op]
    rule_assigned, rule_waiting = users_joined(joined, actor)

    totals = plan.totals
    skipped = [i for i, row in enumerate(plan.rows) if row[0] == "error"]
    result = {
        "created": totals["create"],
        "updated": totals["update"],
        "unchanged": totals["unchanged"],
        "skipped": len(skipped),
        "assigned": len(assignments),
        "assigned_by_rules": rule_assigned,
        "waiting_for_license": rule_waiting,
        "new_locations": sorted(plan.new_locations.values()),
        "new_groups": sorted(plan.new_groups.values()),
    }
    job.result = result
    job.status = "done"
    job.processed_rows = job.total_rows
    job.finished_at = job.updated_at = utcnow()
    audit.record(
        "users.import",
        target=job,
        actor=actor,
        summary=(
            f"Imported {job.filename}: {result['created']} created, {result['updated']} updated, "
            f"{result['unchanged']} unchanged, {result['skipped']} skipped"
        ),
        details={"import_id": job.id, **result},
    )
    db.session.flush()
    return result


def _group_links(created_ids: list[int], plan: Plan, groups: dict[str, int]):
    """The memberships to insert (the new users', and the regrouped users' new sets), made
    as they are written."""
    for user_id, op in zip(created_ids, plan.creates, strict=True):
        for key in dict.fromkeys(op["groups"]):
            yield {"user_id": user_id, "group_id": groups[key]}
    for op in plan.updates:
        for key in dict.fromkeys(op.get("groups", ())):
            yield {"user_id": op["id"], "group_id": groups[key]}


def _refuse_archived_meanwhile(user_ids: set[int]) -> None:
    """The plan saw these users unarchived; under their locks, make sure they still are."""
    ids = sorted(user_ids)
    for part in _chunks(ids):
        archived = db.session.scalar(
            select(User.email).where(member_of(User.id, part), User.status == "archived").limit(1)
        )
        if archived is not None:
            raise DomainError(
                f"{archived} was archived while the import ran; nothing was imported. "
                "Apply the import again."
            )
