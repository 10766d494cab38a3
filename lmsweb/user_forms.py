"""The forms that add and edit a user, shared by the new-user dialog and the details page."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from flask import url_for
from flask_wtf import FlaskForm
from markupsafe import Markup
from sqlalchemy import func, select
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    SelectField,
    SelectMultipleField,
    StringField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from . import lifecycle, scope
from .extensions import db
from .models import ROLE_LABELS, Course, Group, Location, User

ROLE_CHOICES = [SelectChoice(role, label) for role, label in ROLE_LABELS.items()]


def by_name(model: type[Location] | type[Group]) -> list[SelectChoice]:
    """Every location or group as a choice (id, name), by name: the pickers of the user,
    scope, rule and SCIM token forms."""
    rows = db.session.execute(select(model.id, model.name).order_by(model.name))
    return [SelectChoice(ident, name) for ident, name in rows]


class CheckboxList(SelectMultipleField):
    """Several choices as a list of checkboxes (never a Ctrl-click multi-select)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def _optional_int(value):
    return int(value) if value not in (None, "", "None") else None


def _blank_to_none(value):
    return value.strip() or None if isinstance(value, str) else value


def _taken(message: str, user: User) -> ValidationError:
    link = url_for("users.detail", user_id=user.id)
    return ValidationError(
        Markup('{} <a href="{}">{}</a>.').format(message, link, user.name or user.email)
    )


class UserForm(FlaskForm):
    """Names, email, user ID, location, groups and role."""

    first_name = StringField(
        "First name", validators=[DataRequired(message="Enter a first name."), Length(max=100)]
    )
    last_name = StringField(
        "Last name", validators=[DataRequired(message="Enter a last name."), Length(max=100)]
    )
    email = StringField(
        "Email", validators=[DataRequired(message="Enter an email address."), Length(max=254)]
    )
    user_id = StringField(
        "User ID", validators=[Optional(), Length(max=64)], filters=[_blank_to_none]
    )
    location = SelectField("Location", coerce=_optional_int, validate_choice=True)
    # Its own id: the list's filter panel has checkboxes group-0, group-1, ... too.
    group = CheckboxList("Groups", coerce=int, id="user-group")
    role = SelectField("Role", choices=ROLE_CHOICES, default="learner")
    manager_email = StringField(
        "Manager",
        validators=[Optional(), Length(max=254)],
        filters=[_blank_to_none],
    )
    next = HiddenField()

    def __init__(self, *args, user: User | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.location.choices = [SelectChoice(None, "— None —"), *by_name(Location)]
        self.group.choices = by_name(Group)
        self._narrow_to_scope()

    def _narrow_to_scope(self) -> None:
        """A scoped administrator picks from their scope's locations and groups (and keeps
        what the user already has), and makes no administrators."""
        rule = scope.current_rule()
        if rule is None:
            return
        had_location = {self.user.location_id} if self.user else set()
        had_groups = {g.id for g in self.user.groups} if self.user else set()
        # Any location named to them (a user there lands in scope through a scoped group).
        locations = scope.visible_location_ids(rule) | had_location
        groups = rule.group_ids | had_groups
        self.location.choices = [
            c for c in self.location.choices if c.value is None or c.value in locations
        ]
        self.group.choices = [c for c in self.group.choices if c.value in groups]
        self.role.choices = [c for c in self.role.choices if c.value != "admin"]

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if refusal := scope.landing_refusal(self.location.data, self.group.data or []):
            # Also instead of "Not a valid choice" for a location outside the scope.
            self.location.errors = [refusal]
            return False
        return valid

    def validate_email(self, field):
        value = (field.data or "").strip()
        try:
            value = validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ValidationError(str(exc)) from exc
        field.data = value.lower()
        other = db.session.scalar(select(User).where(func.lower(User.email) == field.data))
        if other is not None and (self.user is None or other.id != self.user.id):
            raise _taken("This email already belongs to", other)

    def validate_user_id(self, field):
        other = db.session.scalar(select(User).where(User.employee_id == field.data))
        if other is not None and (self.user is None or other.id != self.user.id):
            raise _taken("This user ID already belongs to", other)

    def validate_manager_email(self, field):
        manager = db.session.scalar(
            select(User).where(func.lower(User.email) == field.data.strip().lower())
        )
        if manager is None:
            raise ValidationError("No user has this email; add the manager first.")
        if self.user is not None and manager.id == self.user.id:
            raise ValidationError("A user cannot be their own manager.")
        if manager.status == "archived":
            raise ValidationError(f"{manager.name} is archived and cannot be a manager.")
        self.manager = manager

    def selected_manager(self) -> User | None:
        return getattr(self, "manager", None) if self.manager_email.data else None

    def validate_role(self, field):
        if self.user is None:
            return
        from flask_login import current_user

        refusal = lifecycle.role_change_refusal(
            self.user.id,
            self.user.role,
            field.data,
            current_user.id,
            lambda: lifecycle.other_admins(self.user.id),
        )
        if refusal:
            raise ValidationError(refusal)

    def selected_groups(self) -> list[Group]:
        ids = self.group.data or []
        return list(db.session.scalars(select(Group).where(Group.id.in_(ids)))) if ids else []


class NewUserForm(UserForm):
    """Adding a user may also approve and notify them and assign courses."""

    approve_notify = BooleanField("Approve and send the invitation now")
    course = CheckboxList("Courses to assign", coerce=int, id="new-course")
    due_date = DateField("Due date", validators=[Optional()])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.course.choices = [
            SelectChoice(c.id, f"{c.code} — {c.title} ({c.seats_available} available)")
            for c in db.session.scalars(select(Course).order_by(Course.code))
        ]

    def selected_courses(self) -> list[Course]:
        ids = self.course.data or []
        return (
            list(db.session.scalars(select(Course).where(Course.id.in_(ids)).order_by(Course.code)))
            if ids
            else []
        )
