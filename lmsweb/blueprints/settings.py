"""Organisation settings: SCIM provisioning tokens."""

from __future__ import annotations

from flask import Blueprint, abort, flash, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from .. import scim_tokens
from ..extensions import db
from ..licensing import DomainError
from ..models import ScimToken
from ..rendering import render, see_other

bp = Blueprint("settings", __name__, url_prefix="/admin/settings")


class TokenForm(FlaskForm):
    name = StringField(
        "Token name",
        validators=[DataRequired(message="Give the token a name."), Length(max=100)],
        description="What it is for, e.g. the directory: “Entra ID”.",
    )


def _page(form: TokenForm, status: int = 200, new_token: str | None = None):
    tokens = db.session.scalars(
        select(ScimToken).order_by(ScimToken.revoked_at.is_not(None), ScimToken.name)
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
    try:
        row, token = scim_tokens.create(form.name.data, current_user._get_current_object())
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
