"""Organisation settings: SCIM provisioning tokens."""

from __future__ import annotations

from flask import Blueprint, abort, flash, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from wtforms import RadioField, SelectMultipleField, StringField, ValidationError
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from .. import scim_tokens
from ..extensions import db
from ..licensing import DomainError
from ..models import Group, Location, ScimToken, Scope
from ..rendering import render, see_other
from ..user_forms import by_name

bp = Blueprint("settings", __name__, url_prefix="/admin/settings")


class IdChoices(SelectMultipleField):
    """Checkboxes of ids (rendered by the template); anything else is a plain form error."""

    def __init__(self, *args, unknown_message: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.unknown_message = unknown_message

    def process_formdata(self, valuelist):
        try:
            self.data = list(dict.fromkeys(int(v) for v in valuelist))
        except ValueError:
            self.data = []
            raise ValueError(self.unknown_message) from None

    def pre_validate(self, form):
        known = {choice.value for choice in self.choices}
        if any(value not in known for value in self.data or []):
            raise ValidationError(self.unknown_message)


class TokenForm(FlaskForm):
    name = StringField(
        "Token name",
        validators=[DataRequired(message="Give the token a name."), Length(max=100)],
        description="What it is for, e.g. the directory: “Entra ID”.",
    )
    reach = RadioField(
        "The token reaches",
        choices=[
            SelectChoice("organisation", "Everyone (organisation-wide)"),
            SelectChoice("scope", "Only the people at these locations or in these groups"),
        ],
        default="organisation",
        validators=[DataRequired(message="Choose whom the token reaches.")],
    )
    location = IdChoices(
        "Locations",
        coerce=int,
        validators=[Optional()],
        unknown_message="Unknown location: choose from the list.",
    )
    group = IdChoices(
        "Groups",
        coerce=int,
        validators=[Optional()],
        unknown_message="Unknown group: choose from the list.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.location.choices = by_name(Location)
        self.group.choices = by_name(Group)

    def validate_reach(self, field):
        if field.data == "scope" and not (self.location.data or self.group.data):
            raise ValidationError(
                "Choose at least one location or group, or make the token organisation-wide."
            )


def _page(form: TokenForm, status: int = 200, new_token: str | None = None):
    tokens = db.session.scalars(
        select(ScimToken)
        .options(
            selectinload(ScimToken.scope).selectinload(Scope.locations),
            selectinload(ScimToken.scope).selectinload(Scope.groups),
            selectinload(ScimToken.created_by),
        )
        .order_by(ScimToken.revoked_at.is_not(None), ScimToken.name)
    ).all()
    return render(
        "settings/scim.html",
        "settings/_scim.html",
        status=status,
        form=form,
        tokens=tokens,
        new_token=new_token,
        scim_url=url_for("scim.service_provider_config", _external=True).rsplit("/", 1)[0],
    )


@bp.route("/scim")
def scim():
    """SCIM provisioning: the endpoint and its tokens."""
    return _page(TokenForm())


@bp.route("/scim/tokens", methods=["POST"])
def create_scim_token():
    """Create a token and show it once (it is stored only as a hash)."""
    form = TokenForm()
    if not form.validate():
        return _page(form, 422)
    locations, groups = [], []
    if form.reach.data == "scope":
        locations = [db.session.get(Location, i) for i in form.location.data or []]
        groups = [db.session.get(Group, i) for i in form.group.data or []]
    try:
        row, token = scim_tokens.create(
            form.name.data, current_user._get_current_object(), locations, groups
        )
    except DomainError as error:
        form.name.errors = [error.message]
        return _page(form, 422)
    db.session.commit()
    # Rendered, never flashed: the flash would put the token in the session cookie.
    return _page(TokenForm(formdata=None), 201, new_token=token)


@bp.route("/scim/tokens/<id:token_id>/revoke", methods=["POST"])
def revoke_scim_token(token_id: int):
    """Revoke a token: its client is refused from the next request on."""
    row = db.session.get(ScimToken, token_id)
    if row is None:
        abort(404, "That token does not exist.")
    if scim_tokens.revoke(row, current_user._get_current_object()):
        db.session.commit()
        flash(f"Token “{row.name}” is revoked.", "success")
    else:
        flash(f"Token “{row.name}” was already revoked.", "info")
    return see_other(url_for("settings.scim"))
