"""The learner side: my assigned training."""

from __future__ import annotations

from flask import Blueprint
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from ..extensions import db
from ..models import CourseAssignment
from ..rendering import render

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
