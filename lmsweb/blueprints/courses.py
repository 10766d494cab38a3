"""Admin area: the course catalogue and each course's license pool."""

from __future__ import annotations

from flask import Blueprint, abort, flash, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from wtforms import IntegerField, SelectField, StringField, TextAreaField, URLField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import URL, DataRequired, InputRequired, Length, NumberRange, Optional

from .. import audit, enrolment, licensing, schedule, scope
from ..domain_error import DomainError
from ..extensions import db
from ..models import Course, Location
from ..navigation import refuse
from ..params import coerce_id
from ..rendering import render, see_other, toast

bp = Blueprint("courses", __name__, url_prefix="/admin/courses")


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _days(label: str, default: int, message: str) -> IntegerField:
    return IntegerField(
        label,
        default=default,
        validators=[
            Optional(),
            NumberRange(min=0, max=3650, message=f"{message} Enter 0 to 3650 days."),
        ],
    )


class ScheduleForm(FlaskForm):
    """The course's compliance schedule; absent fields keep their current (or default) value."""

    remind_before_days = _days(
        "First reminder (days before the due date)", 7, "How many days before the due date?"
    )
    remind_overdue_every_days = _days(
        "Repeat while overdue (every N days)", 7, "How often while overdue?"
    )
    escalate_after_days = _days(
        "Tell the manager after (days overdue)", 14, "After how many days overdue?"
    )
    valid_for_days = _days("A completion is valid for (days)", 0, "How long is it valid?")
    renew_before_days = _days("Renew (days before it expires)", 30, "How long before it expires?")
    # A select, not a checkbox: a POST without the field keeps emails on.
    emails = SelectField(
        "Emails about this course",
        choices=[
            SelectChoice("on", "On: notices, reminders, escalations and renewals"),
            SelectChoice("off", "Off: nothing is emailed about this course"),
        ],
        default="on",
    )


SCHEDULE_FIELDS = (
    "remind_before_days",
    "remind_overdue_every_days",
    "escalate_after_days",
    "valid_for_days",
    "renew_before_days",
)


def _schedule_valid(form: ScheduleForm) -> bool:
    renew, valid = form.renew_before_days.data, form.valid_for_days.data
    if valid and renew is not None and renew >= valid:
        form.renew_before_days.errors = [
            *form.renew_before_days.errors,
            "Renew fewer days before expiry than a completion is valid for.",
        ]
        return False
    return True


def _schedule_values(form: ScheduleForm, course: Course | None) -> dict:
    """The schedule as the form gives it; a field left out keeps the course's value."""
    values = {}
    for name in SCHEDULE_FIELDS:
        value = getattr(form, name).data
        if value is None:
            value = getattr(course, name) if course else getattr(form, name).default
        values[name] = value
    values["emails_enabled"] = form.emails.data != "off"
    return values


class CourseForm(ScheduleForm):
    code = StringField(
        "Code",
        filters=[_strip],
        validators=[DataRequired(message="Enter a course code."), Length(max=32)],
    )
    title = StringField(
        "Title",
        filters=[_strip],
        validators=[DataRequired(message="Enter a title."), Length(max=200)],
    )
    seats = IntegerField(
        "Licenses",
        default=0,
        validators=[
            InputRequired(message="Enter the number of licenses (0 or more)."),
            NumberRange(min=0, max=1_000_000, message="Enter a number from 0 to 1,000,000."),
        ],
    )
    description = TextAreaField("Description", filters=[_strip], validators=[Optional()])
    launch_url = URLField(
        "Launch link",
        filters=[_strip],
        validators=[
            Optional(),
            URL(require_tld=False, message="Enter a full web address (https://…)."),
            Length(max=500),
        ],
    )
    default_due_days = IntegerField(
        "Default due period (days)",
        default=30,
        validators=[
            Optional(),
            NumberRange(min=1, max=3650, message="Enter a number of days from 1 to 3650."),
        ],
    )


class SeatsForm(FlaskForm):
    add = IntegerField(
        "Licenses to add",
        validators=[
            InputRequired(message="Enter a whole number; negative to remove licenses."),
            NumberRange(min=-1_000_000, max=1_000_000, message="That number is too large."),
        ],
    )


def _apply(course: Course, wanted: dict) -> dict[str, dict]:
    """Set the fields of `wanted` that differ; their {"from", "to"} for the audit event."""
    changes = {
        name: {"from": getattr(course, name), "to": value}
        for name, value in wanted.items()
        if value != getattr(course, name)
    }
    for name, change in changes.items():
        setattr(course, name, change["to"])
    return changes


def _courses():
    return db.session.scalars(select(Course).order_by(Course.code)).all()


def _index(status: int = 200, form: CourseForm | None = None):
    return render(
        "courses/index.html",
        "courses/_content.html",
        status=status,
        courses=_courses(),
        form=form or CourseForm(formdata=None),
        open_form=form is not None,
    )


def _load(course_id: int) -> Course:
    course = db.session.get(Course, course_id)
    if course is None:
        abort(404)
    return course


@bp.route("")
def index():
    """The catalogue with every course's license pool."""
    return _index()


@bp.route("/new", methods=["GET", "POST"])
def create_course():
    """Add a course and its license pool (GET: the form as a page of its own)."""
    form = CourseForm()
    if request.method == "GET":
        return render("courses/new.html", form=CourseForm(formdata=None))
    valid = form.validate_on_submit() and _schedule_valid(form)
    taken = "A course with that code already exists."
    if valid and db.session.scalar(
        select(Course.id).where(func.lower(Course.code) == form.code.data.lower())
    ):
        form.code.errors.append(taken)
        valid = False
    if not valid:
        if request.htmx:
            return _index(422, form)
        return render("courses/new.html", status=422, form=form)
    course = Course(
        code=form.code.data,
        title=form.title.data,
        description=form.description.data or "",
        launch_url=form.launch_url.data or "",
        default_due_days=form.default_due_days.data or 30,
        seats_total=form.seats.data,
        seats_reserved=0,
        seats_used=0,
        **_schedule_values(form, None),
    )
    db.session.add(course)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        form.code.errors.append(taken)
        return _index(422, form)
    audit.record(
        "course.create",
        target=course,
        summary=f"Added course {course.code} with {course.seats_total} licenses",
        details={"code": course.code, "seats": course.seats_total},
    )
    db.session.commit()
    message = f"Added {course.code} with {course.seats_total} licenses."
    if request.htmx:
        return toast(_index(), message)
    flash(message, "success")
    return see_other(url_for("courses.index"))


@bp.route("/<id:course_id>/seats", methods=["POST"])
def change_seats(course_id: int):
    """Add licenses to a pool, or remove some (never below what is assigned or in use)."""
    course = _load(course_id)
    htmx = bool(request.htmx)
    form = SeatsForm()
    if not form.validate_on_submit():
        message = "Enter a whole number of licenses to add (negative to remove)."
        if form.add.data is not None and form.add.errors:
            message = " ".join(form.add.errors)
        if htmx:
            return render("courses/_row.html", status=422, course=course, seats_error=message)
        flash(message, "error")
        return see_other(url_for("courses.index"))
    try:
        licensing.add_seats(course, form.add.data)
    except DomainError as error:
        db.session.rollback()
        if htmx:
            return error.message, 409, {"Content-Type": "text/plain; charset=utf-8"}
        flash(error.message, "error")
        return see_other(url_for("courses.index"))
    made = enrolment.resolve_waiting(course, actor=current_user._get_current_object())
    db.session.refresh(course)
    change = form.add.data
    verb = "Added" if change >= 0 else "Removed"
    message = (
        f"{verb} {abs(change)} {'license' if abs(change) == 1 else 'licenses'} "
        f"{'to' if change >= 0 else 'from'} {course.code}: {course.seats_total} in total, "
        f"{course.seats_available} available."
    )
    if made:
        message += f" {made} waiting {'assignment was' if made == 1 else 'assignments were'} made."
    audit.record(
        "course.seats",
        target=course,
        summary=message,
        details={"change": change, "total": course.seats_total},
    )
    db.session.commit()
    if htmx:
        return toast(render("courses/_row.html", course=course), message)
    flash(message, "success")
    return see_other(url_for("courses.index"))


class CourseEditForm(CourseForm):
    seats = None  # the pool changes through change_seats, never by overwriting it


@bp.route("/<id:course_id>/edit", methods=["GET", "POST"])
def edit_course(course_id: int):
    """Edit a course's catalogue entry (code, title, description, launch link, due period)."""
    course = _load(course_id)
    form = CourseEditForm(obj=course)
    if request.method == "GET":
        form.emails.data = "on" if course.emails_enabled else "off"
        return render("courses/edit.html", form=form, course=course)
    valid = form.validate_on_submit() and _schedule_valid(form)
    if valid and db.session.scalar(
        select(Course.id).where(
            func.lower(Course.code) == form.code.data.lower(), Course.id != course.id
        )
    ):
        form.code.errors.append("A course with that code already exists.")
        valid = False
    if not valid:
        return render("courses/edit.html", status=422, form=form, course=course)
    fields = ("code", "title", "description", "launch_url")
    wanted = {
        name: getattr(form, name).data or ""
        for name in fields
        if (getattr(form, name).data or "") != (getattr(course, name) or "")
    }
    wanted["default_due_days"] = form.default_due_days.data or course.default_due_days
    wanted.update(_schedule_values(form, course))
    changes = _apply(course, wanted)
    if changes:
        audit.record(
            "course.update",
            target=course,
            summary=f"Edited course {course.code}: {', '.join(changes)}",
            details=changes,
        )
    db.session.commit()
    flash(f"Saved {course.code}." if changes else f"{course.code} is unchanged.", "success")
    return see_other(url_for("courses.index"))


@bp.route("/<id:course_id>", methods=["GET", "POST"])
def detail(course_id: int):
    """A course: its schedule in plain words (and the form to change it), rules, waiting list."""
    course = _load(course_id)
    form = ScheduleForm(obj=course)
    if request.method == "GET":
        form.emails.data = "on" if course.emails_enabled else "off"
        return render("courses/detail.html", **_detail_context(course, form))
    if not (form.validate_on_submit() and _schedule_valid(form)):
        return render("courses/detail.html", status=422, **_detail_context(course, form))
    changes = _apply(course, _schedule_values(form, course))
    if changes:
        audit.record(
            "course.schedule",
            target=course,
            summary=f"Changed the schedule of {course.code}: {schedule.describe(course)}",
            details=changes,
        )
    db.session.commit()
    message = f"Saved the schedule of {course.code}." if changes else "The schedule is unchanged."
    if request.htmx:
        return toast(render("courses/detail.html", **_detail_context(course, form)), message)
    flash(message, "success")
    return see_other(url_for("courses.detail", course_id=course.id))


def _detail_context(course: Course, form: ScheduleForm) -> dict:
    return {
        "course": course,
        "form": form,
        "description": schedule.describe(course),
        "rules": enrolment.rules_for_course(course),
        "waiting": enrolment.waiting_count(course),
        **_allocations_context(course),
    }


# --- per-location allocations ("Lisbon may use 40 of these 200 seats") -------------------


class AllocationForm(FlaskForm):
    location = SelectField(
        "Location",
        coerce=coerce_id,
        validators=[InputRequired(message="Choose a location.")],
        validate_choice=False,
    )
    seats = IntegerField(
        "Licenses it may use",
        validators=[
            InputRequired(message="Enter how many licenses the location may use (0 or more)."),
            NumberRange(min=0, max=1_000_000, message="Enter a number from 0 to 1,000,000."),
        ],
    )


class AllocationChangeForm(FlaskForm):
    seats = AllocationForm.seats


def _allocations_context(course: Course, form: AllocationForm | None = None) -> dict:
    rows = licensing.allocations(course)
    capped = {row.location_id for row in rows}
    free = [
        loc
        for loc in db.session.scalars(select(Location).order_by(func.lower(Location.name)))
        if loc.id not in capped
    ]
    form = form or AllocationForm(formdata=None)
    form.location.choices = [(loc.id, loc.name) for loc in free]
    return {"allocations": rows, "allocation_form": form, "free_locations": free}


def _organisation_wide() -> None:
    """Allocations divide the organisation's pool: only an organisation-wide administrator
    may set them."""
    if not scope.is_organisation_wide():
        abort(403)


def _allocations_done(course: Course, message: str):
    if request.htmx:
        return toast(
            render("courses/_allocations.html", course=course, **_allocations_context(course)),
            message,
        )
    flash(message, "success")
    return see_other(url_for("courses.detail", course_id=course.id))


def _allocation_refused(course: Course, message: str, status: int = 409):
    db.session.rollback()
    return refuse(message, status, back=url_for("courses.detail", course_id=course.id))


def _waiting_made(course: Course) -> str:
    """A larger allocation (or none) may let people who wait for a license have it."""
    made = enrolment.resolve_waiting(course, actor=current_user._get_current_object())
    if not made:
        return ""
    return f" {made} waiting {'assignment was' if made == 1 else 'assignments were'} made."


def _form_message(form: FlaskForm) -> str:
    return " ".join(e for errors in form.errors.values() for e in errors if isinstance(e, str))


@bp.route("/<id:course_id>/allocations", methods=["POST"])
def add_allocation(course_id: int):
    """Let a location use at most N of the course's licenses."""
    _organisation_wide()
    course = _load(course_id)
    form = AllocationForm()
    if not form.validate_on_submit():
        return _allocation_refused(course, _form_message(form) or "Choose a location.", 422)
    location = db.session.get(Location, form.location.data)
    if location is None:
        return _allocation_refused(course, "That location no longer exists.", 422)
    return _save_allocation(course, location, form.seats.data, exists=False)


@bp.route("/<id:course_id>/allocations/<id:location_id>", methods=["POST"])
def change_allocation(course_id: int, location_id: int):
    """Change how many of the course's licenses a location may use."""
    _organisation_wide()
    course = _load(course_id)
    location = db.get_or_404(Location, location_id)
    form = AllocationChangeForm()
    if not form.validate_on_submit():
        return _allocation_refused(course, _form_message(form) or "Enter a number.", 422)
    return _save_allocation(course, location, form.seats.data, exists=True)


def _save_allocation(course: Course, location: Location, seats: int, exists: bool):
    try:
        before = licensing.set_allocation(course, location, seats, exists=exists)
    except DomainError as error:
        return _allocation_refused(course, error.message)
    except IntegrityError:  # created by someone else a moment ago (SQLite has no row lock)
        return _allocation_refused(
            course, f"{location.name} already has an allocation of {course.code}; change it."
        )
    if before is None:
        action = "allocation.create"
        total = course.seats_total
        message = f"{location.name} may use {seats} of the {total} {course.code} licenses."
    else:
        action = "allocation.update"
        message = f"{location.name} may use {seats} {course.code} licenses (was {before})."
    audit.record(
        action,
        target=course,
        summary=message,
        details={"location": location.name, "seats": {"from": before, "to": seats}},
    )
    message += _waiting_made(course)
    db.session.commit()
    return _allocations_done(course, message)


@bp.route("/<id:course_id>/allocations/<id:location_id>/remove", methods=["POST"])
def remove_allocation(course_id: int, location_id: int):
    """Remove a location's cap: it draws from the course's pool freely again."""
    _organisation_wide()
    course = _load(course_id)
    location = db.get_or_404(Location, location_id)
    try:
        before = licensing.remove_allocation(course, location)
    except DomainError as error:
        return _allocation_refused(course, error.message)
    message = f"{location.name} draws {course.code} licenses from the pool freely again."
    audit.record(
        "allocation.remove",
        target=course,
        summary=message,
        details={"location": location.name, "seats": {"from": before, "to": None}},
    )
    message += _waiting_made(course)
    db.session.commit()
    return _allocations_done(course, message)
