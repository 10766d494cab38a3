"""Admin area: enrolment rules (members of a group, or people at a location, get a course)."""

from __future__ import annotations

from flask import Blueprint, flash, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import IntegerField, SelectField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, NumberRange

from .. import enrolment
from ..domain_error import DomainError
from ..extensions import db
from ..models import Course, CourseAssignment, Group, Location, WaitingEnrolment
from ..rendering import render, see_other
from ..user_forms import by_name

bp = Blueprint("rules", __name__, url_prefix="/admin/rules")


def _optional_int(value):
    return int(value) if value not in (None, "", "None") else None


class RuleForm(FlaskForm):
    group = SelectField("Members of the group", coerce=_optional_int, validate_choice=True)
    location = SelectField("Or people at the location", coerce=_optional_int, validate_choice=True)
    course = SelectField("Get the course", coerce=_optional_int, validate_choice=True)
    due_days = IntegerField(
        "Due in (days)",
        default=30,
        validators=[
            InputRequired(message="Enter how many days they have."),
            NumberRange(min=1, max=3650, message="Enter a number of days from 1 to 3650."),
        ],
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        none = [SelectChoice(None, "— None —")]
        self.group.choices = none + by_name(Group)
        self.location.choices = none + by_name(Location)
        self.course.choices = [SelectChoice(None, "— Choose a course —")] + [
            SelectChoice(c.id, f"{c.code} — {c.title}")
            for c in db.session.scalars(select(Course).order_by(Course.code))
        ]

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if self.course.data is None and not self.course.errors:
            self.course.errors = ["Choose a course."]
            valid = False
        if (self.group.data is None) == (self.location.data is None):
            self.group.errors = [
                *self.group.errors,
                "Choose a group or a location (one of them).",
            ]
            valid = False
        return valid

    def targets(self):
        return (
            db.session.get(Group, self.group.data) if self.group.data else None,
            db.session.get(Location, self.location.data) if self.location.data else None,
            db.session.get(Course, self.course.data),
        )


def _counts() -> tuple[dict[int, int], dict[int, int]]:
    assigned = db.session.execute(
        select(CourseAssignment.rule_id, func.count())
        .where(CourseAssignment.rule_id.is_not(None))
        .group_by(CourseAssignment.rule_id)
    )
    waiting = db.session.execute(
        select(WaitingEnrolment.rule_id, func.count())
        .where(WaitingEnrolment.rule_id.is_not(None), WaitingEnrolment.resolved_at.is_(None))
        .group_by(WaitingEnrolment.rule_id)
    )
    return dict(assigned.all()), dict(waiting.all())


@bp.route("")
def index():
    """Every enrolment rule, with what it has assigned and what waits for a license."""
    assigned, waiting = _counts()
    return render(
        "rules/index.html",
        "rules/_table.html",
        rules=enrolment.all_rules(),
        assigned=assigned,
        waiting=waiting,
    )


@bp.route("/new", methods=["GET", "POST"])
def create_rule():
    """GET: the form. POST: create the rule and apply it to everyone it is for."""
    form = RuleForm()
    if request.method == "GET":
        return render("rules/new.html", "rules/_form.html", form=RuleForm(formdata=None))
    if not form.validate():
        return render("rules/new.html", "rules/_form.html", status=422, form=form)
    group, location, course = form.targets()
    try:
        rule, assigned, waiting = enrolment.create_rule(
            group, location, course, form.due_days.data, current_user._get_current_object()
        )
    except DomainError as error:
        db.session.rollback()
        form.group.errors = [error.message]
        return render("rules/new.html", "rules/_form.html", status=422, form=form)
    db.session.commit()
    message = f"Rule #{rule.id}: {rule.audience} get {course.code}. Assigned {assigned}"
    message += f", {waiting} waiting for a license." if waiting else "."
    flash(message, "success")
    return see_other(url_for("rules.index"))


@bp.route("/preview", methods=["POST"])
def preview_rule():
    """What the rule would do now: how many it assigns and how many licenses that takes."""
    form = RuleForm()
    if not form.validate():
        return render("rules/new.html", "rules/_form.html", status=422, form=form)
    group, location, course = form.targets()
    result = enrolment.preview(group.id if group else None, location.id if location else None,
                               course)  # fmt: skip
    audience = f"members of {group.name}" if group else f"people at {location.name}"
    return render(
        "rules/new.html",
        "rules/_form.html",
        form=form,
        preview=result,
        audience=audience,
        course=course,
    )
