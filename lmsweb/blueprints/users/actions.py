"""Users: the Approve and Notify row actions."""

from __future__ import annotations

from flask import flash, make_response, request
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField

from ... import audit, lifecycle
from ...domain_error import DomainError
from ...extensions import db
from ...models import User
from ...navigation import back_to_list, go_back, refuse
from ...notifications import queue_invitation
from ...rendering import toast, wants_partial
from ...security import scoped
from ...user_queries import get_user_or_404
from . import bp
from .listing import row_answer


class RowActionForm(FlaskForm):
    """A row action's fields: where to go back to (the filtered list) and options."""

    class Meta:
        csrf = False  # CSRFProtect already checks every POST

    next = HiddenField()
    notify = BooleanField("Also send the invitation")


def _answer(user: User, message: str, next_url: str):
    """htmx: the re-rendered row and a toast; plain request: back to the filtered list."""
    if wants_partial():
        return toast(make_response(row_answer(user, next_url)), message)
    flash(message, "success")
    return go_back(next_url)


def _notify(user: User, resend: bool) -> None:
    message = queue_invitation(user)
    db.session.flush()
    audit.record(
        "user.resend_invitation" if resend else "user.notify",
        target=user,
        summary=f"Invitation {'re-sent' if resend else 'queued'} to {user.email}",
        details={"email_id": message.id},
    )


@bp.route("/<id:user_id>/approve", methods=["POST"])
@scoped
def approve_user(user_id: int):
    """Approve a pending user; with `notify`, queue their invitation in the same step."""
    user = get_user_or_404(user_id)
    form = RowActionForm(request.form)
    next_url = back_to_list(form.next.data)
    try:
        changed = lifecycle.approve(user)
        if changed:
            audit.record("user.approve", target=user, summary=f"Approved {user.email}")
        if form.notify.data:
            _notify(user, resend=user.notified_at is not None)
    except DomainError as exc:
        db.session.rollback()
        return refuse(str(exc), back=next_url)
    db.session.commit()
    if form.notify.data:
        message = f"{user.name} is approved; the invitation is on its way."
    elif changed:
        message = f"{user.name} is approved."
    else:
        message = f"{user.name} was already approved."
    return _answer(user, message, next_url)


@bp.route("/<id:user_id>/notify", methods=["POST"])
@scoped
def notify_user(user_id: int):
    """Queue the invitation email (again, if already notified)."""
    user = get_user_or_404(user_id)
    form = RowActionForm(request.form)
    next_url = back_to_list(form.next.data)
    resend = user.notified_at is not None
    try:
        _notify(user, resend)
    except DomainError as exc:
        db.session.rollback()
        return refuse(str(exc), back=next_url)
    db.session.commit()
    verb = "sent again" if resend else "queued"
    return _answer(user, f"Invitation to {user.email} {verb}.", next_url)
