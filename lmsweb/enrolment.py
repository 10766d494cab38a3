"""Enrolment rules: members of a group, or people at a location, get a course due in N days.

A rule applies to current members when it is created and to everyone who joins afterwards,
whichever way they join: every join path (add user, details edit, the groups dialog, import,
bulk add-to-group, portal sign-in, provisioning) calls `user_joined` for one user or
`users_joined` for a batch. Without a free seat the assignment waits (`WaitingEnrolment`)
and is made as soon as seats are added (`resolve_waiting`, called by the seats view and by
every worker pass). Seats are taken through licensing, never around it, and every
rule-made assignment names its rule on the audit trail.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import exists, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from . import audit, licensing
from .extensions import db
from .models import (
    AuditEvent,
    Course,
    CourseAssignment,
    EnrolmentRule,
    Group,
    Location,
    User,
    WaitingEnrolment,
    user_groups,
    utcnow,
)

CHUNK = 500


def rules_for_course(course: Course) -> list[EnrolmentRule]:
    return list(
        db.session.scalars(
            select(EnrolmentRule)
            .where(EnrolmentRule.course_id == course.id)
            .order_by(EnrolmentRule.id)
        )
    )


def all_rules() -> list[EnrolmentRule]:
    return list(
        db.session.scalars(
            select(EnrolmentRule)
            .options(
                joinedload(EnrolmentRule.group),
                joinedload(EnrolmentRule.location),
                joinedload(EnrolmentRule.course),
            )
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


# --- who a rule is for ------------------------------------------------------------------


def _audience(group_id: int | None, location_id: int | None):
    """The ids of the (unarchived) people a rule is for."""
    query = select(User.id).where(User.status != "archived")
    if group_id is not None:
        members = select(user_groups.c.user_id).where(user_groups.c.group_id == group_id)
        return query.where(User.id.in_(members))
    return query.where(User.location_id == location_id)


def _still_needed(query, course_id: int):
    """Those of `query` with neither an open record nor a waiting place for the course."""
    has_record = exists().where(
        CourseAssignment.user_id == User.id,
        CourseAssignment.course_id == course_id,
        CourseAssignment.archived_at.is_(None),
    )
    waits = exists().where(
        WaitingEnrolment.user_id == User.id,
        WaitingEnrolment.course_id == course_id,
        WaitingEnrolment.resolved_at.is_(None),
    )
    return query.where(~has_record, ~waits)


@dataclass(frozen=True)
class Preview:
    members: int
    already: int
    to_assign: int
    available: int

    @property
    def assigned_now(self) -> int:
        return min(self.to_assign, self.available)

    @property
    def waiting(self) -> int:
        return self.to_assign - self.assigned_now


def preview(group_id: int | None, location_id: int | None, course: Course) -> Preview:
    """What creating the rule would do now: whom it assigns and the licenses that takes."""
    audience = _audience(group_id, location_id)
    members = db.session.scalar(select(func.count()).select_from(audience.subquery()))
    needed = db.session.scalar(
        select(func.count()).select_from(_still_needed(audience, course.id).subquery())
    )
    return Preview(members, members - needed, needed, course.seats_available)


def create_rule(
    group: Group | None, location: Location | None, course: Course, due_days: int, actor
) -> tuple[EnrolmentRule, int, int]:
    """Create a rule and apply it to its current members: (rule, assigned, waiting)."""
    if (group is None) == (location is None):
        raise licensing.DomainError("Choose a group or a location (one of them).")
    rule = EnrolmentRule(
        group_id=group.id if group else None,
        location_id=location.id if location else None,
        course_id=course.id,
        due_days=due_days,
        created_by_id=actor.id if actor else None,
    )
    db.session.add(rule)
    db.session.flush()
    assigned, waiting = _apply(rule, None, actor)
    audit.record(
        "rule.create",
        target=rule,
        actor=actor,
        summary=(
            f"Rule #{rule.id}: {rule.audience} get {course.code}, due in {due_days} days "
            f"({assigned} assigned, {waiting} waiting for a license)"
        ),
        details={"rule": rule.id, "course": course.code, "assigned": assigned,
                 "waiting": waiting},
    )  # fmt: skip
    return rule, assigned, waiting


# --- applying rules ---------------------------------------------------------------------


def user_joined(user: User, actor: User | None = None) -> tuple[int, int]:
    """The one hook of every join path for a single user (added, edited, provisioned, signed
    in from the portal): apply the rules the user now falls under."""
    db.session.flush()
    return users_joined([user.id], actor)


def users_joined(user_ids: Iterable[int], actor: User | None = None) -> tuple[int, int]:
    """Apply every rule to these users (a batch: import, bulk add-to-group).
    Returns (assigned, waiting); idempotent."""
    ids = sorted(set(user_ids))
    # No rule, nothing to apply: without this an import of 100,000 users locked them all
    # and asked for their rules 200 times (most of its commit on PostgreSQL).
    if not ids or db.session.scalar(select(EnrolmentRule.id).limit(1)) is None:
        return 0, 0
    assigned = waiting = 0
    for start in range(0, len(ids), CHUNK):
        part = ids[start : start + CHUNK]
        # Users before any pool (licensing's order): each rule below takes its pool's seats
        # with these already held, so no rule waits for a user while holding a pool.
        licensing.lock_users(part, share=True)
        in_groups = select(user_groups.c.group_id).where(user_groups.c.user_id.in_(part))
        at_locations = select(User.location_id).where(User.id.in_(part))
        rules = db.session.scalars(
            select(EnrolmentRule)
            .where(
                or_(
                    EnrolmentRule.group_id.in_(in_groups),
                    EnrolmentRule.location_id.in_(at_locations),
                )
            )
            .order_by(EnrolmentRule.id)
        ).all()
        for rule in rules:
            a, w = _apply(rule, part, actor)
            assigned += a
            waiting += w
    return assigned, waiting


def _apply(rule: EnrolmentRule, user_ids: list[int] | None, actor) -> tuple[int, int]:
    """Assign the rule's course to those of its audience (within `user_ids`) who need it:
    as many as there are seats, in one batch; the rest wait for a license."""
    course = db.session.get(Course, rule.course_id)
    query = _still_needed(_audience(rule.group_id, rule.location_id), course.id)
    if user_ids is not None:
        query = query.where(User.id.in_(user_ids))
    ids = list(db.session.scalars(query.order_by(User.id)))
    if not ids:
        return 0, 0
    if licensing.row_locks():
        # Shared locks before the pool's: an archive of one of them waits for this batch,
        # or has happened and the audience is read again without them.
        licensing.lock_users(ids, share=True)
        locked = set(ids)
        ids = [uid for uid in db.session.scalars(query.order_by(User.id)) if uid in locked]
        if not ids:
            return 0, 0
    # A location's allocation may be full while the pool is not: its people wait too.
    # (Locks the pool, so what is available is read under its lock.)
    fit = licensing.fit_allocations(course, ids).fit
    db.session.refresh(course, ["seats_total", "seats_reserved", "seats_used"])
    now = utcnow()
    due = now.date() + timedelta(days=rule.due_days)
    seated = fit[: course.seats_available]
    try:
        with db.session.begin_nested():
            licensing.take_seats(course, seated)
            _insert_assignments(rule, course, seated, due, actor, now)
    except (IntegrityError, licensing.NoSeatsAvailable):
        # Someone assigned or took seats a moment ago: one by one, through licensing.
        seated = _assign_one_by_one(rule, course, seated, due, actor)
    waiting = [uid for uid in ids if uid not in set(seated)]
    _insert_waiting(rule, course, waiting, actor, now)
    return len(seated), len(waiting)


def _rule_event(rule, course, user_id, due: date, actor, now, action: str) -> dict:
    text = (
        f"Assigned {course.code} (due {due.isoformat()}) by rule #{rule.id}: {rule.audience}"
        if action == "assignment.rule"
        else f"{course.code} waits for a license (rule #{rule.id}: {rule.audience})"
    )
    return {
        "actor_id": actor.id if actor else None,
        "action": action,
        "target_type": "enrolmentrule",
        "target_id": rule.id,
        "target_user_id": user_id,
        "summary": text,
        "details": {"rule": rule.id, "course": course.code, "due_date": due.isoformat()},
        "created_at": now,
    }


def _insert_assignments(rule, course, user_ids, due, actor, now) -> None:
    for start in range(0, len(user_ids), CHUNK):
        part = user_ids[start : start + CHUNK]
        db.session.execute(
            insert(CourseAssignment),
            [
                {"user_id": uid, "course_id": course.id, "rule_id": rule.id,
                 "assigned_by_id": actor.id if actor else None, "assigned_at": now,
                 "due_date": due, "state": "assigned"}
                for uid in part
            ],
        )  # fmt: skip
        db.session.execute(
            insert(AuditEvent),
            [_rule_event(rule, course, uid, due, actor, now, "assignment.rule") for uid in part],
        )


def _assign_one_by_one(rule, course, user_ids, due, actor) -> list[int]:
    done = []
    for user_id in user_ids:
        user = db.session.get(User, user_id)
        try:
            assignment = licensing.assign(user, course, due, actor=actor)
        except licensing.DomainError:
            continue
        assignment.rule_id = rule.id
        db.session.execute(
            insert(AuditEvent),
            [_rule_event(rule, course, user_id, due, actor, utcnow(), "assignment.rule")],
        )
        done.append(user_id)
    return done


def _insert_waiting(rule, course, user_ids, actor, now) -> None:
    due = now.date() + timedelta(days=rule.due_days)
    for start in range(0, len(user_ids), CHUNK):
        part = user_ids[start : start + CHUNK]
        db.session.execute(
            insert(WaitingEnrolment),
            [
                {"user_id": uid, "course_id": course.id, "rule_id": rule.id,
                 "due_days": rule.due_days, "created_at": now}
                for uid in part
            ],
        )  # fmt: skip
        db.session.execute(
            insert(AuditEvent),
            [_rule_event(rule, course, uid, due, actor, now, "assignment.waiting") for uid in part],
        )


# --- waiting for a license --------------------------------------------------------------


def resolve_waiting(course: Course, actor: User | None = None, now: datetime | None = None) -> int:
    """Make waiting assignments of `course`, oldest first, while it has free seats."""
    now = now or utcnow()
    db.session.refresh(course, ["seats_total", "seats_reserved", "seats_used"])
    free = course.seats_available
    if free <= 0:
        return 0
    waiting = db.session.scalars(
        select(WaitingEnrolment)
        .options(joinedload(WaitingEnrolment.user), joinedload(WaitingEnrolment.rule))
        .where(WaitingEnrolment.course_id == course.id, WaitingEnrolment.resolved_at.is_(None))
        .order_by(WaitingEnrolment.id)
        .limit(free)
    ).all()
    made = 0
    for place in waiting:
        if place.user.status == "archived":
            place.resolved_at = now  # gone: the place is given up, no seat taken
            continue
        due = place.due_date or now.date() + timedelta(days=place.due_days)
        try:
            with db.session.begin_nested():
                if place.renewal_of_id is not None:
                    old = db.session.get(CourseAssignment, place.renewal_of_id)
                    licensing.archive_activity(old, "renewed")
                assignment = licensing.assign(place.user, course, due, actor=actor)
                assignment.rule_id = place.rule_id
                assignment.renewal_of_id = place.renewal_of_id
                db.session.flush()
        except licensing.NoSeatsAvailable:
            db.session.refresh(course, ["seats_total", "seats_reserved", "seats_used"])
            if course.seats_available <= 0:
                break
            continue  # their location's allocation is full: they keep waiting
        except licensing.DomainError:
            place.resolved_at = now  # assigned meanwhile by other means
            continue
        place.resolved_at = now
        place.assignment_id = assignment.id
        reason = f"rule #{place.rule_id}" if place.rule_id else "renewal"
        audit.record(
            "assignment.waiting_resolved",
            target=assignment,
            target_user=place.user,
            actor=actor,
            summary=f"Assigned {course.code} (due {due.isoformat()}), which waited for a "
            f"license ({reason})",
            details={"rule": place.rule_id, "course": course.code, "due_date": due.isoformat()},
        )
        made += 1
    db.session.flush()
    return made


def resolve_all_waiting(now: datetime) -> int:
    """Every course with waiting places and free seats (the worker's pass)."""
    course_ids = db.session.scalars(
        select(WaitingEnrolment.course_id)
        .where(WaitingEnrolment.resolved_at.is_(None))
        .group_by(WaitingEnrolment.course_id)
    ).all()
    made = 0
    for course in db.session.scalars(select(Course).where(Course.id.in_(course_ids))):
        made += resolve_waiting(course, now=now)
    return made
