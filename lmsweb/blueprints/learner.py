"""The learner side: my assigned training."""

from __future__ import annotations

from flask import Blueprint, abort, flash, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from .. import audit, licensing
from ..domain_error import DomainError
from ..extensions import db
from ..models import CourseAssignment
from ..navigation import app_path, refuse
from ..rendering import render, see_other, toast

bp = Blueprint("learner", __name__, url_prefix="/my")


@bp.route("/training")
def training():
    """The signed-in user's own training records."""
    assignments = db.session.scalars(
        select(CourseAssignment)
        .options(joinedload(CourseAssignment.course))
        .where(CourseAssignment.user_id == current_user.id, CourseAssignment.archived_at.is_(None))
        .order_by(
            CourseAssignment.due_date.is_(None), CourseAssignment.due_date, CourseAssignment.id
        )
    ).all()
    return render("learner/training.html", "learner/_list.html", assignments=assignments)


def _own_assignment(assignment_id: int) -> CourseAssignment:
    """A learner may touch only their own, unarchived records (others' do not exist for them)."""
    assignment = db.session.get(
        CourseAssignment, assignment_id, options=[joinedload(CourseAssignment.course)]
    )
    if assignment is None or assignment.user_id != current_user.id:
        abort(404)
    return assignment


def _refused(message: str):
    db.session.rollback()
    return refuse(message, back=app_path(url_for("learner.training")))


@bp.route("/training/<id:assignment_id>/start", methods=["POST"])
def start_training(assignment_id: int):
    """Start a course: first access recorded, its license becomes used, the course opens."""
    assignment = _own_assignment(assignment_id)
    try:
        first = licensing.start(assignment)
    except DomainError as error:
        return _refused(error.message)
    course = assignment.course
    if first:
        audit.record(
            "training.start",
            target=assignment,
            target_user=assignment.user,
            summary=f"{assignment.user.name} started {course.code}",
            details={"course": course.code},
        )
    db.session.commit()
    if request.htmx and course.launch_url:
        return see_other(course.launch_url)  # HX-Redirect: the browser opens the course
    message = f"Started {course.title}."
    if request.htmx:
        return toast(render("learner/_item.html", a=assignment), message)
    flash(message + (" Open it with the link below." if course.launch_url else ""), "success")
    return see_other(url_for("learner.training"))


@bp.route("/training/<id:assignment_id>/complete", methods=["POST"])
def complete_training(assignment_id: int):
    """Mark a course complete (starting it first if it was never opened)."""
    assignment = _own_assignment(assignment_id)
    if assignment.state == "completed":
        return _refused(f"{assignment.course.title} is already completed.")
    try:
        licensing.complete(assignment)
    except DomainError as error:
        return _refused(error.message)
    course = assignment.course
    audit.record(
        "training.complete",
        target=assignment,
        target_user=assignment.user,
        summary=f"{assignment.user.name} completed {course.code}",
        details={"course": course.code},
    )
    db.session.commit()
    message = f"Completed {course.title}. Well done!"
    if request.htmx:
        return toast(render("learner/_item.html", a=assignment), message)
    flash(message, "success")
    return see_other(url_for("learner.training"))
