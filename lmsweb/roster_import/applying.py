"""Roster import, applying: a plan made again inside the transaction, then written in bulk."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from .. import audit
from ..domain_error import DomainError
from ..extensions import db
from ..licensing import NoSeatsAvailable, lock_users, take_seats
from ..models import Course, CourseAssignment, Group, ImportJob, Location, User, user_groups, utcnow
from .planning import _chunks, managers_by_email, member_of, plan_import


def _insert_rows(table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows in the session's transaction: executemany on SQLite (fast there);
    COPY on PostgreSQL, where psycopg's executemany sends one statement per row."""
    if not rows:
        return
    connection = db.session.connection()
    if connection.dialect.name != "postgresql":
        db.session.execute(insert(table), rows)
        return
    # COPY knows no Python-side defaults: fill them in as an INSERT would.
    names = list(rows[0])
    defaults = {
        c.name: c.default.arg
        for c in table.columns
        if c.name not in names and c.default is not None and c.default.is_scalar
    }
    names += list(defaults)
    columns = ", ".join(f'"{name}"' for name in names)
    raw = connection.connection.dbapi_connection
    with raw.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({columns}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([row[n] if n in row else defaults[n] for n in names])


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


def apply(job: ImportJob, actor: User | None) -> dict[str, Any]:
    """Apply the valid rows of `job` (re-planned now) in the caller's transaction.

    Raises NoSeatsAvailable (nothing changed) when a course lacks seats."""
    plan = plan_import(job.data, job.create_missing, actor.id if actor else None)
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
    created_ids: list[int] = []
    if plan.creates:
        values = [
            {
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
            for op in plan.creates
        ]
        # Core executemany of the users table (RETURNING in parameter order would make
        # SQLite insert row by row); the new ids are then read back by email.
        _insert_rows(User.__table__, values)
        ids: dict[str, int] = {}
        for part in _chunks([v["email"] for v in values]):
            ids.update(
                (email, user_id)
                for user_id, email in db.session.execute(
                    select(User.id, func.lower(User.email)).where(
                        member_of(func.lower(User.email), part)
                    )
                )
            )
        created_ids = [ids[v["email"]] for v in values]
    links: list[dict[str, int]] = []
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
        links.extend(
            {"user_id": user_id, "group_id": groups[k]} for k in dict.fromkeys(op["groups"])
        )
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
            links.extend(
                {"user_id": op["id"], "group_id": groups[k]} for k in dict.fromkeys(op["groups"])
            )
        assign_rows(op["id"], op.get("courses", []))
    # Grouped by the columns they set: one executemany per shape.
    shapes: dict[tuple, list] = {}
    for values in field_updates:
        shapes.setdefault(tuple(sorted(values)), []).append(values)
    for batch in shapes.values():
        db.session.execute(update(User), batch)
    if manager_of:
        # After the creates: a manager may be a new user of this same file.
        ids_by_email = managers_by_email(set(manager_of.values()))
        db.session.execute(
            update(User),
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
    _insert_rows(user_groups, links)
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
                _insert_rows(CourseAssignment.__table__, assignments)
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
    job.preview = plan.preview()
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
