"""Admin area: the course catalogue and each course's license pool."""

from __future__ import annotations

from flask import Blueprint, abort, flash, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from wtforms import IntegerField, StringField, TextAreaField, URLField
from wtforms.validators import URL, DataRequired, InputRequired, Length, NumberRange, Optional

from .. import audit, licensing
from ..domain_error import DomainError
from ..extensions import db
from ..models import Course
from ..rendering import render, see_other, toast

bp = Blueprint("courses", __name__, url_prefix="/admin/courses")


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class CourseForm(FlaskForm):
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
            InputRequired(message="Enter how many days learners have by default."),
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
    valid = form.validate_on_submit()
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
        default_due_days=form.default_due_days.data,
        seats_total=form.seats.data,
        seats_reserved=0,
        seats_used=0,
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
    db.session.refresh(course)
    change = form.add.data
    verb = "Added" if change >= 0 else "Removed"
    message = (
        f"{verb} {abs(change)} {'license' if abs(change) == 1 else 'licenses'} "
        f"{'to' if change >= 0 else 'from'} {course.code}: {course.seats_total} in total, "
        f"{course.seats_available} available."
    )
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
        return render("courses/edit.html", form=form, course=course)
    valid = form.validate_on_submit()
    if valid and db.session.scalar(
        select(Course.id).where(
            func.lower(Course.code) == form.code.data.lower(), Course.id != course.id
        )
    ):
        form.code.errors.append("A course with that code already exists.")
        valid = False
    if not valid:
        return render("courses/edit.html", status=422, form=form, course=course)
    fields = ("code", "title", "description", "launch_url", "default_due_days")
    changes = {
        name: {"from": getattr(course, name), "to": getattr(form, name).data or ""}
        for name in fields
        if (getattr(form, name).data or "") != (getattr(course, name) or "")
    }
    for name, change in changes.items():
        setattr(course, name, change["to"])
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
