"""Admin area: groups and locations (named, unique case-insensitively, removable when unused)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, abort, flash, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from .. import audit, scope
from ..extensions import db
from ..models import (
    Course,
    EnrolmentRule,
    Group,
    Location,
    LocationAllocation,
    user_counts,
)
from ..navigation import app_path, refuse
from ..rendering import render, see_other, toast

bp = Blueprint("org", __name__, url_prefix="/admin")


class NameForm(FlaskForm):
    name = StringField(
        "Name",
        filters=[lambda v: " ".join(v.split()) if v else v],
        validators=[DataRequired(message="Enter a name."), Length(max=120)],
    )


@dataclass(frozen=True)
class Kind:
    """Groups and locations behave alike; this says which one a view is about."""

    model: type
    slug: str  # groups | locations
    singular: str
    plural: str
    filter_param: str  # the Users page's filter for members

    def member_counts(self) -> dict[int, int]:
        """Every group's (location's) members, of any status, from the kept counts
        (`user_counts`): a few rows a group, where counting the members read every one (130
        ms for the groups at a million users)."""
        c = user_counts.c
        rows = db.session.execute(
            select(c.ref_id, func.sum(c.n))
            .where(c.kind == self.filter_param)
            .group_by(c.ref_id)
            .having(func.sum(c.n) > 0)
        )
        return {ref: int(n) for ref, n in rows}

    def members(self, item) -> int:
        c = user_counts.c
        query = select(func.sum(c.n)).where(c.kind == self.filter_param, c.ref_id == item.id)
        return int(db.session.scalar(query) or 0)


GROUPS = Kind(Group, "groups", "group", "groups", "group")
LOCATIONS = Kind(Location, "locations", "location", "locations", "location")


def _load(kind: Kind, item_id: int):
    item = db.session.get(kind.model, item_id)
    if item is None:
        abort(404)
    return item


def _name_taken(kind: Kind, name: str, except_id: int | None = None) -> bool:
    query = select(kind.model.id).where(func.lower(kind.model.name) == name.lower())
    if except_id is not None:
        query = query.where(kind.model.id != except_id)
    return db.session.scalar(query) is not None


def _taken(kind: Kind, name: str) -> str:
    return f"A {kind.singular} named “{name}” already exists."


def _page(kind: Kind, status: int = 200, form: NameForm | None = None, rename=None):
    """The list (full page or its partial), optionally with a form's errors."""
    items = db.session.scalars(select(kind.model).order_by(func.lower(kind.model.name))).all()
    return render(
        "org/index.html",
        "org/_content.html",
        status=status,
        kind=kind,
        items=items,
        counts=kind.member_counts(),
        form=form or NameForm(formdata=None),
        rename=rename or {},
    )


def _done(kind: Kind, message: str):
    """After a change: the refreshed list to htmx (with a toast), 303 + flash otherwise."""
    if request.htmx:
        return toast(_page(kind), message)
    flash(message, "success")
    return see_other(url_for(f"org.{kind.slug}"))


def _refuse(kind: Kind, message: str, status: int = 409):
    return refuse(message, status, back=app_path(url_for(f"org.{kind.slug}")))


def _add(kind: Kind):
    form = NameForm()
    valid = form.validate_on_submit()
    if valid and _name_taken(kind, form.name.data):
        form.name.errors.append(_taken(kind, form.name.data))
        valid = False
    if not valid:
        return _page(kind, 422, form=form)
    item = kind.model(name=form.name.data)
    db.session.add(item)
    try:
        db.session.flush()
    except IntegrityError:  # added by someone else a moment ago
        db.session.rollback()
        form.name.errors.append(_taken(kind, form.name.data))
        return _page(kind, 422, form=form)
    audit.record(
        f"{kind.singular}.create", target=item, summary=f"Added {kind.singular} {item.name}"
    )
    db.session.commit()
    return _done(kind, f"Added {kind.singular} “{item.name}”.")


def _rename(kind: Kind, item_id: int):
    item = _load(kind, item_id)
    form = NameForm()
    valid = form.validate_on_submit()
    if valid and _name_taken(kind, form.name.data, except_id=item.id):
        form.name.errors.append(_taken(kind, form.name.data))
        valid = False
    if not valid:
        return _page(kind, 422, rename={item.id: " ".join(form.name.errors)})
    old = item.name
    if old == form.name.data:
        return _done(kind, f"“{old}” is unchanged.")
    item.name = form.name.data
    audit.record(
        f"{kind.singular}.rename",
        target=item,
        summary=f"Renamed {kind.singular} {old} to {item.name}",
        details={"from": old, "to": item.name},
    )
    db.session.commit()
    return _done(kind, f"Renamed “{old}” to “{item.name}”.")


def _remove(kind: Kind, item_id: int):
    item = _load(kind, item_id)
    members = kind.members(item)
    if members:
        who = "1 user is" if members == 1 else f"{members} users are"
        return _refuse(
            kind,
            f"“{item.name}” cannot be removed: {who} in it. "
            f"Move them to another {kind.singular} first.",
        )
    if scopes := scope.naming_scopes(kind.model, item.id):
        who = "a scope" if scopes == 1 else f"{scopes} scopes"
        return _refuse(
            kind,
            f"“{item.name}” cannot be removed: it is in {who} (of an administrator or a SCIM "
            "token). Change the scope first.",
        )
    if isinstance(item, Location):
        # A course's allocation for it (#17) keeps it (the database refuses too: RESTRICT).
        codes = db.session.scalars(
            select(Course.code)
            .join(LocationAllocation, LocationAllocation.course_id == Course.id)
            .where(LocationAllocation.location_id == item.id)
            .order_by(Course.code)
        ).all()
        if codes:
            return _refuse(
                kind,
                f"“{item.name}” cannot be removed: it has an allocation of {', '.join(codes)}. "
                "Remove the allocation on the course's page first.",
            )
    rule_column = EnrolmentRule.group_id if kind.model is Group else EnrolmentRule.location_id
    codes = db.session.scalars(
        select(Course.code)
        .join(EnrolmentRule, EnrolmentRule.course_id == Course.id)
        .where(rule_column == item.id)
        .order_by(Course.code)
    ).all()
    if codes:
        rules = (
            "1 enrolment rule gives" if len(codes) == 1 else f"{len(codes)} enrolment rules give"
        )
        return _refuse(
            kind,
            f"“{item.name}” cannot be removed: {rules} {', '.join(sorted(set(codes)))} to its "
            "people. Remove the rule on the Rules page first.",
        )
    name = item.name
    audit.record(f"{kind.singular}.remove", target=item, summary=f"Removed {kind.singular} {name}")
    db.session.delete(item)
    db.session.commit()
    return _done(kind, f"Removed {kind.singular} “{name}”.")


@bp.route("/groups")
def groups():
    """List groups with their member counts."""
    return _page(GROUPS)


@bp.route("/groups/new", methods=["POST"])
def add_group():
    """Add a group."""
    return _add(GROUPS)


@bp.route("/groups/<id:item_id>/rename", methods=["POST"])
def rename_group(item_id: int):
    """Rename a group."""
    return _rename(GROUPS, item_id)


@bp.route("/groups/<id:item_id>/remove", methods=["POST"])
def remove_group(item_id: int):
    """Remove a group nobody is in."""
    return _remove(GROUPS, item_id)


@bp.route("/locations")
def locations():
    """List locations with their member counts."""
    return _page(LOCATIONS)


@bp.route("/locations/new", methods=["POST"])
def add_location():
    """Add a location."""
    return _add(LOCATIONS)


@bp.route("/locations/<id:item_id>/rename", methods=["POST"])
def rename_location(item_id: int):
    """Rename a location."""
    return _rename(LOCATIONS, item_id)


@bp.route("/locations/<id:item_id>/remove", methods=["POST"])
def remove_location(item_id: int):
    """Remove a location nobody is at."""
    return _remove(LOCATIONS, item_id)
