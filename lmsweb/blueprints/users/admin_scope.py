"""Users: an administrator's scope (#17), set on their details page by an
organisation-wide administrator: everyone, or the users of some locations and groups."""

from __future__ import annotations

from flask import flash, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import RadioField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired

from ... import audit, scope
from ...extensions import db
from ...models import Group, Location, User
from ...navigation import refuse
from ...rendering import see_other
from ...security import org_wide
from ...user_forms import CheckboxList, by_name
from ...user_queries import get_user_or_404
from . import bp

ORGANISATION, SCOPED = "organisation", "scoped"
ORGANISATION_WIDE = "Organisation-wide"


class ScopeForm(FlaskForm):
    """Organisation-wide, or the locations and groups the administrator reaches."""

    mode = RadioField(
        "Who this administrator manages",
        choices=[
            SelectChoice(ORGANISATION, "Organisation-wide: everyone"),
            SelectChoice(SCOPED, "Only the users of these locations and groups"),
        ],
        validators=[InputRequired(message="Choose organisation-wide or a scope.")],
    )
    location = CheckboxList("Locations", coerce=int)
    group = CheckboxList("Groups", coerce=int)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.location.choices = by_name(Location)
        self.group.choices = by_name(Group)


def label_of(user: User) -> str:
    return user.scope.label if user.scope is not None else ORGANISATION_WIDE


@bp.app_template_global()
def admin_scope_form(user: User) -> ScopeForm | None:
    """The scope form of `user`'s details page: only for an administrator, and only to an
    organisation-wide administrator."""
    if user.role != "admin" or not current_user.is_authenticated:
        return None
    if current_user.scope_id is not None:
        return None
    current = user.scope
    return ScopeForm(
        formdata=None,
        mode=SCOPED if current is not None else ORGANISATION,
        location=[x.id for x in current.locations] if current else [],
        group=[g.id for g in current.groups] if current else [],
    )


@bp.route("/<id:user_id>/scope", methods=["POST"])
@org_wide
def set_scope(user_id: int):
    """Make an administrator organisation-wide or scope them; their sessions end."""
    user = get_user_or_404(user_id)
    here = url_for("users.detail", user_id=user.id)
    if user.role != "admin":
        return refuse(
            f"{user.name} is not an administrator: only administrators have a scope.",
            409,
            back=here,
        )
    if user.id == current_user.id:
        return refuse(
            "You cannot change your own scope; another organisation-wide administrator can.",
            409,
            back=here,
        )
    form = ScopeForm()
    if not form.validate():
        errors = " ".join(e for errs in form.errors.values() for e in errs)
        return refuse(errors or "Check the scope and try again.", 422, back=here)
    locations, groups = [], []
    if form.mode.data == SCOPED:
        locations = list(
            db.session.scalars(select(Location).where(Location.id.in_(form.location.data or [])))
        )
        groups = list(db.session.scalars(select(Group).where(Group.id.in_(form.group.data or []))))
        if not locations and not groups:
            return refuse(
                "Choose at least one location or group, or make the administrator "
                "organisation-wide.",
                422,
                back=here,
            )
    before = label_of(user)
    unchanged = (user.scope is None and not locations and not groups) or (
        user.scope is not None
        and {x.id for x in user.scope.locations} == {x.id for x in locations}
        and {g.id for g in user.scope.groups} == {g.id for g in groups}
        and (locations or groups)
    )
    if unchanged:
        flash(f"The scope of {user.name} is unchanged.", "info")
        return see_other(here)
    scope.set_scope(user, locations, groups)
    user.end_sessions()
    after = label_of(user)
    audit.record(
        "user.scope",
        target=user,
        summary=f"Scope of {user.name}: {before} → {after}",
        details={
            "from": before,
            "to": after,
            "locations": [x.name for x in locations],
            "groups": [g.name for g in groups],
        },
    )
    db.session.commit()
    flash(f"{user.name} now manages: {after}. Their sessions have ended.", "success")
    return see_other(here)
