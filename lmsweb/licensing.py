"""License pools and training records: the only place seat counters change.

Rule 1 of DESIGN.md: a seat is taken with one conditional UPDATE, so two requests (or two
processes) can never both take the last seat. Functions here flush but never commit: the
caller commits once, together with its audit event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError

from .extensions import db
from .models import Course, CourseAssignment, User, utcnow


class DomainError(Exception):
    """A rule was broken; the message is shown to the administrator as it is."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NoSeatsAvailable(DomainError):
    pass


def _expire(course_id: int) -> None:
    course = db.session.identity_map.get((Course, (course_id,), None))
    if course is not None:
        db.session.expire(course, ["seats_total", "seats_reserved", "seats_used"])


def take_seats(course: Course, count: int = 1) -> None:
    """Reserve `count` seats atomically, or none; raises NoSeatsAvailable."""
    if count <= 0:
        return
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
    if user.status == "archived":
        raise DomainError(f"{user.name} is archived; restore them before assigning courses.")
    already = DomainError(f"{user.name} is already assigned {course.code}.")
    if open_assignment(user, course) is not None:
        raise already
    try:
        # A savepoint: if a concurrent request assigned the same course a moment ago, the
        # unique index refuses the row and the seat taken here is given back with it.
        with db.session.begin_nested():
            take_seats(course)
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


def unassign(assignment: CourseAssignment) -> None:
    """Withdraw an unstarted assignment: the record is archived, the seat returns."""
    if assignment.archived_at is not None:
        raise DomainError("That assignment is already archived.")
    if assignment.state != "assigned":
        raise DomainError("A started course cannot be unassigned; archive the activity instead.")
    _archive(assignment, "unassigned")


def archive_activity(assignment: CourseAssignment, reason: str = "activity_archived") -> bool:
    """Archive a record (retraining or archiving the user). Returns True if a seat returned."""
    if assignment.archived_at is not None:
        return False
    return _archive(assignment, reason)


def _archive(assignment: CourseAssignment, reason: str) -> bool:
    returned = assignment.state == "assigned"
    if returned:
        release_seats(assignment.course)
    assignment.archived_at = utcnow()
    assignment.archive_reason = reason
    db.session.flush()
    return returned


def start(assignment: CourseAssignment) -> None:
    """The learner opened the course: first access recorded, the seat becomes used."""
    if assignment.archived_at is not None:
        raise DomainError("This training record is archived.")
    if assignment.state != "assigned":
        return
    _use_seat(assignment.course)
    assignment.state = "in_progress"
    assignment.started_at = utcnow()
    db.session.flush()


def complete(assignment: CourseAssignment, score: int | None = None) -> None:
    """Mark complete (starting it first if it was never opened)."""
    if assignment.archived_at is not None:
        raise DomainError("This training record is archived.")
    if assignment.state == "completed":
        return
    if assignment.state == "assigned":
        start(assignment)
    assignment.state = "completed"
    assignment.completed_at = utcnow()
    assignment.score = score
    db.session.flush()


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
    a seat back (it was unstarted). Refuses when the course was assigned again since or no
    seat is left; the guarded UPDATE makes a second, concurrent undo fail, not double up."""
    if assignment.user.status == "archived":
        raise DomainError(f"{assignment.user.name} is archived; restore them first.")
    code = assignment.course.code
    if open_assignment(assignment.user, assignment.course) is not None:
        raise DomainError(f"{assignment.user.name} has been assigned {code} again since.")
    reserve = assignment.state == "assigned"
    try:
        with db.session.begin_nested():
            result = db.session.execute(
                update(CourseAssignment)
                .where(
                    CourseAssignment.id == assignment.id, CourseAssignment.archived_at.is_not(None)
                )
                .values(archived_at=None, archive_reason=None)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:
                raise DomainError(f"That {code} record is no longer archived.")
            if reserve:
                take_seats(assignment.course)
    except IntegrityError:
        raise DomainError(f"{assignment.user.name} has been assigned {code} again since.") from None
    finally:
        db.session.expire(assignment, ["archived_at", "archive_reason"])
    return reserve
