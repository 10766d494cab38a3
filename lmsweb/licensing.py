"""License pools and training records: the only place seat counters change.

Rule 1 of DESIGN.md: a seat is taken with one conditional UPDATE, so two requests (or two
processes) can never both take the last seat. Functions here flush but never commit: the
caller commits once, together with its audit event.

A record changes state with a conditional UPDATE too (`WHERE state = expected AND
archived_at IS NULL`): its row count decides, so of two racing requests one wins and the
other is refused with nothing changed, and the pool moves in the same transaction. Row locks
are taken in one order everywhere — users, then courses (by id), then records — so racing
requests on PostgreSQL wait for each other instead of deadlocking; on SQLite a writing
request holds the database's write lock from its first statement (BEGIN IMMEDIATE).

Per-location allocations ("Lisbon may use 40 of these 200 seats") cap the seats held by the
course's records whose user is at the location. Every path that takes a seat for users passes
their ids to `take_seats`, which locks the pool, then the allocations it touches (FOR UPDATE,
by location id: users → courses → allocations → records), counts what those locations hold
(one statement per location, however many users) and refuses before taking anything. A
location without an allocation draws from the pool freely.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date

from sqlalchemy import and_, case, func, not_, select, update
from sqlalchemy.exc import IntegrityError

from .domain_error import DomainError
from .extensions import db
from .models import Course, CourseAssignment, Location, LocationAllocation, User, utcnow


class NoSeatsAvailable(DomainError):
    pass


# Ids per locking statement: well under PostgreSQL's 65,535 bind parameters.
_LOCK_CHUNK = 5000


def row_locks() -> bool:
    """PostgreSQL locks rows. SQLite has none: a writing request holds the database's
    write lock from its first statement instead (BEGIN IMMEDIATE)."""
    return db.session.get_bind().dialect.name == "postgresql"


def _lock(column, ids, **for_update) -> None:
    """Row-lock by id, in id order."""
    if not row_locks():
        return
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), _LOCK_CHUNK):
        part = ordered[start : start + _LOCK_CHUNK]
        db.session.execute(
            select(column).where(column.in_(part)).order_by(column).with_for_update(**for_update)
        ).all()


def lock_courses(course_ids) -> None:
    """Lock pools in id order, so two transactions that need the same pools never each
    hold one the other waits for. FOR NO KEY UPDATE: a new record's foreign key check
    (FOR KEY SHARE) is not blocked by it."""
    _lock(Course.id, course_ids, key_share=True)


def lock_users(user_ids, share: bool = False) -> None:
    """Lock users in id order (before any pool): FOR SHARE for an assign, which only needs
    the user to stay unarchived; FOR NO KEY UPDATE to archive or restore them."""
    _lock(User.id, user_ids, read=share, key_share=not share)


_RECORD_COLUMNS = ["state", "archived_at", "archive_reason", "started_at", "completed_at", "score"]


def _transition(assignment: CourseAssignment, states: tuple[str, ...], **values) -> bool:
    """Move an open record from one of `states`; False (nothing changed) if it is no longer
    open in one of them. The caller holds the record's pool lock."""
    result = db.session.execute(
        update(CourseAssignment)
        .where(
            CourseAssignment.id == assignment.id,
            CourseAssignment.state.in_(states),
            CourseAssignment.archived_at.is_(None),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    db.session.expire(assignment, _RECORD_COLUMNS)
    return result.rowcount == 1


def _expire(course_id: int) -> None:
    course = db.session.identity_map.get((Course, (course_id,), None))
    if course is not None:
        db.session.expire(course, ["seats_total", "seats_reserved", "seats_used"])


def holds_seat():
    """A record holds a seat of its pool unless it was withdrawn unstarted: reserved while
    open and assigned, used once started (and a used seat stays used when the record is
    completed or archived). The same definition as `expected_counters`."""
    return not_(
        and_(CourseAssignment.state == "assigned", CourseAssignment.archived_at.is_not(None))
    )


def held_at(course_id: int, location_id: int) -> int:
    """Seats of the course held by records whose user is at the location now.

    Changing a user's location does not move seats and is never refused for a cap: their
    records simply count where they are now, and the new location's cap is checked on its
    next take (`flask lms check` reports a location a move has taken over its cap)."""
    return db.session.scalar(
        select(func.count())
        .select_from(CourseAssignment)
        .join(User, User.id == CourseAssignment.user_id)
        .where(
            CourseAssignment.course_id == course_id,
            User.location_id == location_id,
            holds_seat(),
        )
    )


def held_by_location(course_id: int, location_ids: list[int]) -> dict[int, int]:
    """Seats of the course held at each of these locations."""
    if not location_ids:
        return {}
    rows = db.session.execute(
        select(User.location_id, func.count())
        .select_from(CourseAssignment)
        .join(User, User.id == CourseAssignment.user_id)
        .where(
            CourseAssignment.course_id == course_id,
            User.location_id.in_(sorted(location_ids)),
            holds_seat(),
        )
        .group_by(User.location_id)
    )
    return {location_id: int(n) for location_id, n in rows}


def lock_allocations(course_id: int, location_ids, lock: bool = True) -> dict[int, int]:
    """Lock the course's allocations for these locations (FOR UPDATE, by location id; after
    the pool's lock, before any record's) and return their caps: {location_id: seats}.
    `lock=False` only reads them (a preview)."""
    ids = sorted({i for i in location_ids if i is not None})
    if not ids:
        return {}
    caps: dict[int, int] = {}
    for start in range(0, len(ids), _LOCK_CHUNK):
        query = (
            select(LocationAllocation.location_id, LocationAllocation.seats)
            .where(
                LocationAllocation.course_id == course_id,
                LocationAllocation.location_id.in_(ids[start : start + _LOCK_CHUNK]),
            )
            .order_by(LocationAllocation.location_id)
        )
        if lock and row_locks():
            query = query.with_for_update()
        caps.update(db.session.execute(query).all())
    return caps


def _locations_of(user_ids) -> dict[int, int | None]:
    """{user_id: location_id}, in chunks (one statement per chunk, never per user)."""
    ids = sorted(set(user_ids))
    found: dict[int, int | None] = {}
    for start in range(0, len(ids), _LOCK_CHUNK):
        part = ids[start : start + _LOCK_CHUNK]
        found.update(
            db.session.execute(select(User.id, User.location_id).where(User.id.in_(part))).all()
        )
    return found


def _has_allocations(course_id: int) -> bool:
    return (
        db.session.scalar(
            select(LocationAllocation.location_id)
            .where(LocationAllocation.course_id == course_id)
            .limit(1)
        )
        is not None
    )


@dataclass
class AllocationFit:
    """Users (in the order given) who fit their location's allocation, and those who do not,
    with the message that says why for the first location that is full."""

    fit: list[int]
    over: list[int]
    messages: dict[int, str]  # location_id -> "No licenses left for Lisbon on ..."


def fit_allocations(course: Course, user_ids) -> AllocationFit:
    """Split `user_ids` by the course's per-location allocations: within each capped
    location, the first users up to what is left fit, the rest are over. Locks the pool and
    then the allocations (held until commit), so the answer stays true for a `take_seats`
    in the same transaction. One statement per capped location, never per user."""
    lock_courses([course.id])
    return _fit(course, user_ids)


def preview_allocations(course: Course, user_ids) -> AllocationFit:
    """fit_allocations without locking anything: what a confirmation dialog shows."""
    return _fit(course, user_ids, lock=False)


def _fit(course: Course, user_ids, lock: bool = True) -> AllocationFit:
    """fit_allocations, the pool being locked already (read under its lock, an allocation
    created a moment ago is seen)."""
    ordered = list(dict.fromkeys(user_ids))
    if not ordered or not _has_allocations(course.id):
        return AllocationFit(ordered, [], {})
    locations = _locations_of(ordered)
    caps = lock_allocations(course.id, set(locations.values()), lock=lock)
    room = {loc: cap - held_at(course.id, loc) for loc, cap in sorted(caps.items())}
    wanted = Counter(locations.get(uid) for uid in ordered)
    fit, over, messages = [], [], {}
    for uid in ordered:
        loc = locations.get(uid)
        if loc not in room:
            fit.append(uid)
        elif room[loc] > 0:
            room[loc] -= 1
            fit.append(uid)
        else:
            over.append(uid)
            if loc not in messages:
                messages[loc] = _full_message(course, loc, caps[loc], wanted[loc])
    return AllocationFit(fit, over, messages)


def _full_message(course: Course, location_id: int, cap: int, wanted: int) -> str:
    """ "No licenses left for Lisbon on FIRE-101: Lisbon may use 40, 40 in use." """
    name = db.session.scalar(select(Location.name).where(Location.id == location_id))
    held = held_at(course.id, location_id)
    if held >= cap:
        return f"No licenses left for {name} on {course.code}: {name} may use {cap}, {held} in use."
    return (
        f"Not enough licenses left for {name} on {course.code}: {name} may use {cap}, "
        f"{held} in use, {wanted} more needed."
    )


def take_seats(course: Course, user_ids) -> None:
    """Reserve one seat for each of `user_ids` atomically, or none; raises NoSeatsAvailable
    when the pool, or a location's allocation, has too few left."""
    user_ids = list(user_ids)
    count = len(user_ids)
    if count <= 0:
        return
    # The pool first: its conditional UPDATE takes the pool's row lock (users → courses →
    # allocations → records), under which the allocations are read and locked.
    result = db.session.execute(
        update(Course)
        .where(
            Course.id == course.id,
            Course.seats_total - Course.seats_reserved - Course.seats_used >= count,
        )
        .values(seats_reserved=Course.seats_reserved + count)
        .execution_options(synchronize_session=False)
    )
    _expire(course.id)
    if result.rowcount != 1:
        available = course.seats_available
        raise NoSeatsAvailable(
            f"No licenses available for {course.code}: needs {count}, {available} available."
        )
    checked = _fit(course, user_ids)
    if checked.over:
        # None taken: the seats go back before the refusal, whatever the caller does.
        release_seats(course, count)
        raise NoSeatsAvailable(next(iter(checked.messages.values())))


def release_seats(course: Course, count: int = 1) -> None:
    """Return reserved (unstarted) seats to the pool."""
    if count <= 0:
        return
    result = db.session.execute(
        update(Course)
        .where(Course.id == course.id, Course.seats_reserved >= count)
        .values(seats_reserved=Course.seats_reserved - count)
        .execution_options(synchronize_session=False)
    )
    _expire(course.id)
    if result.rowcount != 1:
        raise DomainError(
            f"The license pool of {course.code} is out of step; run `flask lms check`."
        )


def _use_seat(course: Course) -> None:
    """Move one seat from reserved to used (the learner started the course)."""
    result = db.session.execute(
        update(Course)
        .where(Course.id == course.id, Course.seats_reserved >= 1)
        .values(seats_reserved=Course.seats_reserved - 1, seats_used=Course.seats_used + 1)
        .execution_options(synchronize_session=False)
    )
    _expire(course.id)
    if result.rowcount != 1:
        raise DomainError(
            f"The license pool of {course.code} is out of step; run `flask lms check`."
        )


def open_assignment(user: User, course: Course) -> CourseAssignment | None:
    return db.session.scalar(
        select(CourseAssignment).where(
            CourseAssignment.user_id == user.id,
            CourseAssignment.course_id == course.id,
            CourseAssignment.archived_at.is_(None),
        )
    )


def assign(
    user: User, course: Course, due_date: date | None, actor: User | None = None
) -> CourseAssignment:
    """Assign a course, taking one seat. Raises DomainError when it cannot be done."""
    # Shared lock: an archive of this user waits for this assign, or this assign sees it.
    lock_users([user.id], share=True)
    db.session.refresh(user, ["status"])
    if user.status == "archived":
        raise DomainError(f"{user.name} is archived; restore them before assigning courses.")
    already = DomainError(f"{user.name} is already assigned {course.code}.")
    if open_assignment(user, course) is not None:
        raise already
    try:
        # A savepoint: if a concurrent request assigned the same course a moment ago, the
        # unique index refuses the row and the seat taken here is given back with it.
        with db.session.begin_nested():
            take_seats(course, [user.id])
            assignment = CourseAssignment(
                user_id=user.id,
                course_id=course.id,
                assigned_by_id=actor.id if actor else None,
                due_date=due_date,
                state="assigned",
            )
            db.session.add(assignment)
            db.session.flush()
    except IntegrityError:
        _expire(course.id)
        raise already from None
    return assignment


def _refusal(assignment: CourseAssignment, started: str) -> DomainError:
    """Why a record could not move: read again, as a concurrent request changed it."""
    db.session.refresh(assignment)
    if assignment.archived_at is not None:
        return DomainError("That assignment is already archived.")
    return DomainError(started)


def unassign(assignment: CourseAssignment) -> None:
    """Withdraw an unstarted assignment: the record is archived, the seat returns."""
    lock_courses([assignment.course_id])
    if not _transition(
        assignment, ("assigned",), archived_at=utcnow(), archive_reason="unassigned"
    ):
        raise _refusal(
            assignment, "A started course cannot be unassigned; archive the activity instead."
        )
    release_seats(assignment.course)


def archive_activity(assignment: CourseAssignment, reason: str = "activity_archived") -> bool:
    """Archive a record (retraining or archiving the user). Returns True if a seat returned.

    Raises DomainError if the record is archived already (a concurrent request did it)."""
    lock_courses([assignment.course_id])
    values = {"archived_at": utcnow(), "archive_reason": reason}
    if _transition(assignment, ("assigned",), **values):
        release_seats(assignment.course)
        return True
    if _transition(assignment, ("in_progress", "completed"), **values):
        return False
    # In any state, so the only way to lose is to find it archived already.
    raise DomainError("That activity is already archived.")


def start(assignment: CourseAssignment) -> bool:
    """The learner opened the course: first access recorded, the seat becomes used.
    Returns True if this call started it (False: it was started already)."""
    lock_courses([assignment.course_id])
    if _transition(assignment, ("assigned",), state="in_progress", started_at=utcnow()):
        _use_seat(assignment.course)
        return True
    db.session.refresh(assignment)
    if assignment.archived_at is not None:
        raise DomainError("This training record is archived.")
    return False


def complete(assignment: CourseAssignment, score: int | None = None) -> None:
    """Mark complete (starting it first if it was never opened)."""
    lock_courses([assignment.course_id])
    now = utcnow()
    if _transition(assignment, ("in_progress",), state="completed", completed_at=now, score=score):
        return
    if _transition(
        assignment,
        ("assigned",),
        state="completed",
        started_at=now,
        completed_at=now,
        score=score,
    ):
        _use_seat(assignment.course)
        return
    db.session.refresh(assignment)
    if assignment.archived_at is not None:
        raise DomainError("This training record is archived.")
    raise DomainError(f"{assignment.course.title} is already completed.")


def change_due_date(assignment: CourseAssignment, due_date: date | None) -> None:
    if assignment.archived_at is not None:
        raise DomainError("An archived record's due date cannot change.")
    if assignment.state == "completed":
        raise DomainError("This course is already completed.")
    assignment.due_date = due_date


def add_seats(course: Course, count: int) -> None:
    """Add (or, with a negative count, remove) seats; never below what is in use.

    Relative and conditional in one UPDATE: two administrators changing the same pool at
    once (PostgreSQL, READ COMMITTED) both count, and the total never drops below use.
    """
    result = db.session.execute(
        update(Course)
        .where(
            Course.id == course.id,
            Course.seats_total + count >= 0,
            Course.seats_reserved + Course.seats_used <= Course.seats_total + count,
        )
        .values(seats_total=Course.seats_total + count)
        .execution_options(synchronize_session=False)
    )
    _expire(course.id)
    if result.rowcount != 1:
        raise DomainError(
            f"{course.code} has {course.seats_reserved + course.seats_used} licenses assigned "
            f"or in use; the total ({course.seats_total}) cannot go below that."
        )


def set_seats_total(course: Course, total: int) -> None:
    if total < 0:
        raise DomainError("The number of licenses cannot be negative.")
    result = db.session.execute(
        update(Course)
        .where(Course.id == course.id, Course.seats_reserved + Course.seats_used <= total)
        .values(seats_total=total)
        .execution_options(synchronize_session=False)
    )
    _expire(course.id)
    if result.rowcount != 1:
        raise DomainError(
            f"{course.code} has {course.seats_reserved + course.seats_used} licenses assigned "
            f"or in use; the total cannot go below that."
        )


@dataclass(frozen=True)
class Drift:
    course_id: int
    code: str
    field: str
    stored: int
    expected: int


def expected_counters():
    """Per course: (reserved, used) as the training records imply them."""
    reserved = func.sum(
        case(
            (
                (CourseAssignment.state == "assigned") & CourseAssignment.archived_at.is_(None),
                1,
            ),
            else_=0,
        )
    )
    used = func.sum(case((CourseAssignment.state != "assigned", 1), else_=0))
    rows = db.session.execute(
        select(CourseAssignment.course_id, reserved, used).group_by(CourseAssignment.course_id)
    )
    return {course_id: (int(r or 0), int(u or 0)) for course_id, r, u in rows}


def pool_drift() -> list[Drift]:
    """Compare every pool's counters with its training records."""
    expected = expected_counters()
    drifts: list[Drift] = []
    for course in db.session.scalars(select(Course).order_by(Course.code)):
        reserved, used = expected.get(course.id, (0, 0))
        if course.seats_reserved != reserved:
            drifts.append(
                Drift(course.id, course.code, "reserved", course.seats_reserved, reserved)
            )
        if course.seats_used != used:
            drifts.append(Drift(course.id, course.code, "used", course.seats_used, used))
    return drifts


def repair_counters() -> list[Drift]:
    """Set every drifted counter to what the records imply (total grows if it must)."""
    drifts = pool_drift()
    expected = expected_counters()
    for course_id in {d.course_id for d in drifts}:
        course = db.session.get(Course, course_id)
        reserved, used = expected.get(course_id, (0, 0))
        course.seats_total = max(course.seats_total, reserved + used)
        course.seats_reserved = reserved
        course.seats_used = used
    db.session.flush()
    return drifts


def unarchive(assignment: CourseAssignment) -> bool:
    """Undo an archive or unassign: the same record is open again. Returns True if it took
    a seat back (it was unstarted). Refuses when the user is archived, the course was
    assigned again since or no seat is left. Locks in this module's order (user, pool), then
    a conditional UPDATE whose row count decides: a second, concurrent undo fails, not
    doubles up."""
    user, course = assignment.user, assignment.course
    # Shared, as for an assign: an archive of this user waits for this, or this sees it.
    lock_users([user.id], share=True)
    db.session.refresh(user, ["status"])
    if user.status == "archived":
        raise DomainError(f"{user.name} is archived; restore them first.")
    lock_courses([course.id])
    again = DomainError(f"{user.name} has been assigned {course.code} again since.")
    if open_assignment(user, course) is not None:
        raise again
    # An archived record's state never moves, so the state read here is the one restored.
    reserve = assignment.state == "assigned"
    try:
        with db.session.begin_nested():
            if reserve:
                # Before the record is open again, so its own seat is not counted twice;
                # and in lock order (the pool and allocations before the record).
                take_seats(course, [user.id])
            result = db.session.execute(
                update(CourseAssignment)
                .where(
                    CourseAssignment.id == assignment.id, CourseAssignment.archived_at.is_not(None)
                )
                .values(archived_at=None, archive_reason=None)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:
                raise DomainError(f"That {course.code} record is no longer archived.")
    except IntegrityError:
        _expire(course.id)
        raise again from None
    finally:
        db.session.expire(assignment, _RECORD_COLUMNS)
    return reserve


# --- per-location allocations ---------------------------------------------------------


@dataclass(frozen=True)
class AllocationRow:
    location_id: int
    name: str
    seats: int
    held: int


def allocations(course: Course) -> list[AllocationRow]:
    """The course's allocations by location name, with the seats each location holds
    (counted at the allocated locations only: every location's, for a course of 270,000
    records at a million users, took 210 ms of the course's page)."""
    rows = db.session.execute(
        select(LocationAllocation.location_id, Location.name, LocationAllocation.seats)
        .join(Location, Location.id == LocationAllocation.location_id)
        .where(LocationAllocation.course_id == course.id)
        .order_by(func.lower(Location.name), Location.id)
    ).all()
    held = held_by_location(course.id, [lid for lid, _name, _seats in rows])
    return [AllocationRow(lid, name, seats, held.get(lid, 0)) for lid, name, seats in rows]


def set_allocation(
    course: Course, location: Location, seats: int, *, exists: bool | None = None
) -> int | None:
    """Create or change "`location` may use `seats` of this pool"; returns the cap it had
    (None: it had none). `exists`: True to change only, False to create only. Never below
    what the location holds, never above the pool's total. Locked as a take is (pool, then
    allocation), so a racing assign either counts before the check or meets the new cap."""
    lock_courses([course.id])
    db.session.refresh(course, ["seats_total", "seats_reserved", "seats_used"])
    before = lock_allocations(course.id, [location.id]).get(location.id)
    if exists is True and before is None:
        raise DomainError(f"{location.name} has no allocation of {course.code}.")
    if exists is False and before is not None:
        raise DomainError(
            f"{location.name} already has an allocation of {course.code}; change it instead."
        )
    if seats < 0:
        raise DomainError("An allocation cannot be negative.")
    if seats > course.seats_total:
        raise DomainError(
            f"{course.code} has {course.seats_total} licenses in total; {location.name} "
            f"cannot be allowed {seats}."
        )
    held = held_at(course.id, location.id)
    if seats < held:
        raise DomainError(
            f"{location.name} already holds {held} {course.code} licenses; its allocation "
            f"cannot be below that."
        )
    if before is None:
        db.session.add(
            LocationAllocation(course_id=course.id, location_id=location.id, seats=seats)
        )
    else:
        db.session.execute(
            update(LocationAllocation)
            .where(
                LocationAllocation.course_id == course.id,
                LocationAllocation.location_id == location.id,
            )
            .values(seats=seats)
            .execution_options(synchronize_session=False)
        )
    db.session.flush()
    return before


def remove_allocation(course: Course, location: Location) -> int:
    """Remove the location's cap (it draws from the pool freely again); returns the cap."""
    lock_courses([course.id])
    before = lock_allocations(course.id, [location.id]).get(location.id)
    if before is None:
        raise DomainError(f"{location.name} has no allocation of {course.code}.")
    db.session.execute(
        LocationAllocation.__table__.delete().where(
            LocationAllocation.course_id == course.id,
            LocationAllocation.location_id == location.id,
        )
    )
    return before


@dataclass(frozen=True)
class Overdrawn:
    code: str
    location: str
    seats: int
    held: int


def allocations_exceeded() -> list[Overdrawn]:
    """Every allocation whose location holds more seats than it may (`flask lms check`).
    One grouped statement for all allocations."""
    held = (
        select(
            CourseAssignment.course_id.label("course_id"),
            User.location_id.label("location_id"),
            func.count().label("held"),
        )
        .join(User, User.id == CourseAssignment.user_id)
        .where(User.location_id.is_not(None), holds_seat())
        .group_by(CourseAssignment.course_id, User.location_id)
        .subquery()
    )
    rows = db.session.execute(
        select(Course.code, Location.name, LocationAllocation.seats, held.c.held)
        .join(Course, Course.id == LocationAllocation.course_id)
        .join(Location, Location.id == LocationAllocation.location_id)
        .join(
            held,
            (held.c.course_id == LocationAllocation.course_id)
            & (held.c.location_id == LocationAllocation.location_id),
        )
        .where(held.c.held > LocationAllocation.seats)
        .order_by(Course.code, Location.name)
    )
    return [Overdrawn(code, name, seats, int(n)) for code, name, seats, n in rows]
