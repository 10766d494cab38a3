"""Users: the Groups and Course Assignments dialogs (dialogs with htmx, pages without)."""

from __future__ import annotations

import json
from datetime import date, timedelta

from flask import Response, abort, flash, make_response, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import joinedload
from wtforms import DateField, HiddenField, IntegerField, SelectMultipleField
from wtforms.validators import InputRequired, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from ... import audit, enrolment, licensing, scope, undo
from ...domain_error import DomainError
from ...extensions import db
from ...lifecycle import set_groups
from ...models import AuditEvent, Course, CourseAssignment, Group, User, utcnow
from ...navigation import app_path, back_to_list, go_back, refuse
from ...params import in_range
from ...rendering import render, see_other, toast
from ...security import scoped
from ...user_queries import get_user_or_404
from . import bp
from .listing import row_answer


class CheckboxesField(SelectMultipleField):
    """Checkboxes whose unknown values are reported plainly (not as a WTForms error code)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def __init__(self, *args, unknown_message: str = "Unknown choice.", **kwargs):
        super().__init__(*args, **kwargs)
        self.unknown_message = unknown_message

    def process_formdata(self, valuelist):
        try:
            self.data = [int(v) for v in valuelist]
        except ValueError:
            self.data = []
            raise ValueError(self.unknown_message) from None

    def pre_validate(self, form):
        known = {value for value, _label in self.choices}
        if any(value not in known for value in self.data or []):
            raise ValidationError(self.unknown_message)


class GroupsForm(FlaskForm):
    group = CheckboxesField(
        "Groups",
        coerce=int,
        validators=[Optional()],
        unknown_message="Unknown group: choose from the list.",
    )
    next = HiddenField()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.group.choices = [
            (g.id, g.name) for g in db.session.scalars(select(Group).order_by(Group.name))
        ]


class AssignForm(FlaskForm):
    course = CheckboxesField(
        "Courses", coerce=int, unknown_message="Unknown course: choose from the list."
    )
    due_date = DateField("Due date", validators=[Optional()])
    next = HiddenField()

    def __init__(self, user: User, courses: list[Course], *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.course.choices = [(c.id, c.code) for c in courses]

    def validate_course(self, field):
        if not field.data and not field.errors:
            raise ValidationError("Choose at least one course.")

    def validate_due_date(self, field):
        if field.data is not None and field.data < today():
            raise ValidationError("The due date cannot be in the past.")


class AssignmentForm(FlaskForm):
    assignment = IntegerField(validators=[InputRequired(message="Which assignment?"), in_range()])
    next = HiddenField()


class DueDateForm(AssignmentForm):
    due_date = DateField("New due date", validators=[InputRequired(message="Enter a due date.")])

    def validate_due_date(self, field):
        if field.data is not None and field.data < today():
            raise ValidationError("The due date cannot be in the past.")


def today() -> date:
    return utcnow().date()


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _next_url(user: User) -> str:
    """Back to where the dialog was opened: the user's profile, or the list as it is shown."""
    profile = app_path(url_for("users.detail", user_id=user.id))
    return profile if request.values.get("next") == profile else back_to_list()


def _row_response(user: User, message: str, **events) -> Response:
    """htmx: the user's row (retargeted from the dialog), the dialog closed, a toast."""
    response = make_response(row_answer(user, back_to_list()))
    response.headers["HX-Retarget"] = f"#user-{user.id}"
    response.headers["HX-Reswap"] = "outerHTML"
    response.headers["HX-Trigger"] = json.dumps({"closeDialog": True})
    return toast(response, message, **events)


# --- Groups ---------------------------------------------------------------------------


def _narrow_groups(form: GroupsForm, user: User) -> GroupsForm:
    """A scoped administrator gives the groups of their scope and keeps the user's own."""
    rule = scope.current_rule()
    if rule is not None:
        keep = rule.group_ids | {g.id for g in user.groups}
        form.group.choices = [c for c in form.group.choices if c[0] in keep]
    return form


def _groups_view(user: User, form: GroupsForm, status: int = 200) -> Response:
    if request.headers.get("HX-Target") == "groups-dialog-body":
        page = partial = "users/_groups_body.html"
    else:
        page, partial = "users/groups.html", "users/_groups_dialog.html"
    return render(page, partial, status=status, user=user, form=form, next_url=back_to_list())


@bp.route("/<id:user_id>/groups", methods=["GET", "POST"])
@scoped
def edit_groups(user_id: int):
    """Choose a user's groups: the full new set replaces the old one."""
    user = get_user_or_404(user_id, with_groups=True)
    if request.method == "GET":
        form = GroupsForm(formdata=None, data={"group": [g.id for g in user.groups]})
        return _groups_view(user, _narrow_groups(form, user))
    form = _narrow_groups(GroupsForm(), user)
    if not form.validate_on_submit():
        return _groups_view(user, form, 422)
    chosen = db.session.scalars(select(Group).where(Group.id.in_(form.group.data or []))).all()
    before = [g.id for g in user.groups]
    added, removed = set_groups(user, list(chosen))
    if added:
        enrolment.user_joined(user, actor=current_user._get_current_object())
    parts = []
    if added:
        parts.append("added to " + ", ".join(g.name for g in added))
    if removed:
        parts.append("removed from " + ", ".join(g.name for g in removed))
    message = f"{user.name}: " + ("; ".join(parts) if parts else "groups unchanged") + "."
    offer = None
    if parts:
        event = audit.record(
            "user.groups",
            target=user,
            summary=message,
            details={"added": [g.name for g in added], "removed": [g.name for g in removed]},
        )
        after = [g.id for g in chosen]
        offer = undo.offer(event, "groups", _actor(), before=before, after=after)
    db.session.commit()
    if request.htmx:
        return _row_response(user, message, undo=offer)
    flash(message, "success")
    return go_back(back_to_list())


# --- Course assignments ---------------------------------------------------------------


def _assignments(user: User) -> tuple[list[CourseAssignment], list[CourseAssignment]]:
    rows = db.session.scalars(
        select(CourseAssignment)
        .options(joinedload(CourseAssignment.course))
        .where(CourseAssignment.user_id == user.id)
        .order_by(CourseAssignment.assigned_at.desc(), CourseAssignment.id.desc())
    ).all()
    current = [a for a in rows if a.archived_at is None]
    archived = [a for a in rows if a.archived_at is not None]
    return current, archived


def _all_courses() -> list[Course]:
    return list(db.session.scalars(select(Course).order_by(Course.code)))


def _courses_view(
    user: User, status: int = 200, assign_form: AssignForm | None = None, error: str = ""
) -> Response:
    if request.headers.get("HX-Target") == "courses-dialog-body":
        page = partial = "users/_courses_body.html"
    else:
        page, partial = "users/courses.html", "users/_courses_dialog.html"
    return render(page, partial, status=status, **courses_context(user, assign_form, error))


def courses_context(user: User, assign_form: AssignForm | None = None, error: str = "") -> dict:
    """What the course assignments (dialog, page, or the profile's training) show."""
    current, archived = _assignments(user)
    courses = _all_courses()
    if assign_form is None:
        assign_form = AssignForm(user, courses, formdata=None)
    return {
        "user": user,
        "current": current,
        "archived": archived,
        "courses": courses,
        "assigned_ids": {a.course_id for a in current},
        "form": assign_form,
        "error": error,
        "today": today(),
        "next_url": _next_url(user),
    }


def _after_change(user: User, message: str, offer: dict | None = None) -> Response:
    """Inline dialog actions: the refreshed dialog to htmx, back to the page otherwise."""
    if request.htmx:
        return toast(_courses_view(user), message, undo=offer)
    flash(message, "success")
    return see_other(url_for("users.edit_courses", user_id=user.id, next=_next_url(user)))


def _refuse(user: User, message: str, status: int = 409) -> Response:
    db.session.rollback()
    if request.htmx and status != 422:  # htmx swaps 422 only: it gets the dialog with the error
        return refuse(message, status)
    return _courses_view(user, status, error=message)


def _load_assignment(user: User, form: AssignmentForm) -> CourseAssignment:
    assignment = db.session.get(CourseAssignment, form.assignment.data)
    if assignment is None or assignment.user_id != user.id:
        abort(404)
    return assignment


@bp.route("/<id:user_id>/courses", methods=["GET", "POST"])
@scoped
def edit_courses(user_id: int):
    """A user's course assignments: assign, change due dates, unassign, archive activity."""
    user = get_user_or_404(user_id, with_groups=True)
    if request.method == "GET":
        return _courses_view(user)
    action = request.form.get("action", "assign")
    if action == "assign":
        return _assign(user)
    if action in ("unassign", "archive_activity", "change_due_date"):
        form = DueDateForm() if action == "change_due_date" else AssignmentForm()
        if not form.validate_on_submit():
            errors = " ".join(e for errs in form.errors.values() for e in errs)
            return _refuse(user, errors or "Invalid request.", 422)
        assignment = _load_assignment(user, form)
        offer = None
        try:
            if action == "change_due_date":
                message = _change_due_date(user, assignment, form.due_date.data)
            else:
                archive = _unassign if action == "unassign" else _archive_activity
                message, event = archive(user, assignment)
                offer = undo.offer(
                    event, "assignment_archive", _actor(), **undo.archived_assignment(assignment)
                )
        except DomainError as error:
            return _refuse(user, error.message)
        db.session.commit()
        return _after_change(user, message, offer)
    return _refuse(user, "Unknown action.", 422)


def _assign(user: User) -> Response:
    courses = _all_courses()
    form = AssignForm(user, courses)
    if not form.validate_on_submit():
        return _courses_view(user, 422, assign_form=form)
    by_id = {c.id: c for c in courses}
    # In id order, the order pools are locked in everywhere (no deadlock between requests).
    chosen = [by_id[i] for i in sorted(set(form.course.data))]
    taken = []
    try:
        for course in chosen:
            due = form.due_date.data or today() + timedelta(days=course.default_due_days)
            assignment = licensing.assign(user, course, due, actor=_actor())
            taken.append(assignment)
            audit.record(
                "assignment.assign",
                target=assignment,
                target_user=user,
                summary=f"Assigned {course.code} to {user.name}, due {due.isoformat()}",
                details={"course": course.code, "due_date": due.isoformat(), "seats_taken": 1},
            )
    except DomainError as error:
        # All or nothing: the seats already taken in this request are rolled back too.
        return _refuse(user, error.message)
    db.session.commit()
    codes = ", ".join(a.course.code for a in taken)
    dues = {a.due_date for a in taken}
    due_text = (
        f"due {next(iter(dues)).strftime('%d %b %Y')}" if len(dues) == 1 else "due dates per course"
    )
    message = (
        f"Assigned {codes} to {user.name}, {due_text}. "
        f"{_plural(len(taken), 'license')} taken from the pool."
    )
    if request.htmx and _next_url(user) == app_path(url_for("users.detail", user_id=user.id)):
        return _after_change(user, message)  # the profile's Training section
    if request.htmx:
        return _row_response(user, message, assignmentsChanged={"user": user.id})
    flash(message, "success")
    return go_back(back_to_list())


def _actor() -> User | None:
    from flask_login import current_user

    return current_user._get_current_object() if current_user.is_authenticated else None


def _unassign(user: User, assignment: CourseAssignment) -> tuple[str, AuditEvent]:
    licensing.unassign(assignment)
    code = assignment.course.code
    event = audit.record(
        "assignment.unassign",
        target=assignment,
        target_user=user,
        summary=f"Unassigned {code} from {user.name}; 1 license returned",
        details={"course": code, "seats_returned": 1},
    )
    return f"Unassigned {code} from {user.name}. 1 license returned to the pool.", event


def _archive_activity(user: User, assignment: CourseAssignment) -> tuple[str, AuditEvent]:
    if assignment.archived_at is not None:
        raise DomainError("That activity is already archived.")
    returned = licensing.archive_activity(assignment)
    code = assignment.course.code
    seats = "1 license returned" if returned else "its license stays used"
    event = audit.record(
        "assignment.archive_activity",
        target=assignment,
        target_user=user,
        summary=f"Archived {user.name}'s {code} activity; {seats}",
        details={"course": code, "seats_returned": int(returned)},
    )
    return (
        f"Archived {user.name}'s {code} activity; {seats}. "
        f"{code} can be assigned again (a new license).",
        event,
    )


def _change_due_date(user: User, assignment: CourseAssignment, due: date) -> str:
    before = assignment.due_date
    licensing.change_due_date(assignment, due)
    code = assignment.course.code
    audit.record(
        "assignment.due_date",
        target=assignment,
        target_user=user,
        summary=f"{code} for {user.name} is now due {due.isoformat()}",
        details={
            "course": code,
            "from": before.isoformat() if before else None,
            "to": due.isoformat(),
        },
    )
    return f"{code} for {user.name} is now due {due.strftime('%d %b %Y')}."
