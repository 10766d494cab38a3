"""Admin area: the Email log (the outbox), with retry of failed messages."""

from __future__ import annotations

from flask import Blueprint, abort, flash, make_response, render_template, request, url_for
from sqlalchemy import func, select
from wtforms import Form, IntegerField, SelectField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Optional

from .. import audit, scope
from ..domain_error import DomainError
from ..extensions import db
from ..models import EMAIL_STATUSES, OutboundEmail
from ..navigation import app_path, go_back, refuse, safe_next
from ..notifications import retry
from ..params import in_range
from ..rendering import render, toast, wants_partial
from ..security import scoped

bp = Blueprint("outbox", __name__, url_prefix="/admin/outbox")

PER_PAGE = 50


class OutboxFilterForm(Form):
    """The log's state, all in the query string."""

    status = SelectField(
        "Status",
        choices=[SelectChoice("", "All")]
        + [SelectChoice(s, s.capitalize()) for s in EMAIL_STATUSES],
        default="",
        validators=[Optional()],
    )
    page = IntegerField("Page", default=1, validators=[Optional(), in_range()])


def _in_scope() -> tuple:
    """A scoped administrator reads the email of their people only (#17)."""
    rule = scope.current_rule()
    return () if rule is None else (OutboundEmail.user_id.in_(scope.in_scope_ids(rule)),)


@bp.route("")
@scoped
def index():
    """Every outbound email, newest first; filter by status, paged."""
    form = OutboxFilterForm(request.args)
    valid = form.validate()
    status = form.status.data if valid else ""
    page = (form.page.data or 1) if valid else 1
    mine = _in_scope()
    query = select(OutboundEmail).where(*mine)
    if status:
        query = query.where(OutboundEmail.status == status)
    counts = dict(
        db.session.execute(
            select(OutboundEmail.status, func.count()).where(*mine).group_by(OutboundEmail.status)
        ).all()
    )
    pagination = db.paginate(
        query.order_by(OutboundEmail.id.desc()), page=page, per_page=PER_PAGE, error_out=False
    )
    return render(
        "outbox/index.html",
        "outbox/_table.html",
        form=form,
        current_status=status,
        pagination=pagination,
        counts=counts,
        status=200 if valid else 422,
    )


@bp.route("/<id:email_id>/retry", methods=["POST"])
@scoped
def retry_email(email_id: int):
    """Queue a failed message again, from its first attempt."""
    message = db.session.scalar(
        select(OutboundEmail).where(OutboundEmail.id == email_id, *_in_scope())
    )
    if message is None:
        abort(404, "That email does not exist.")
    next_url = safe_next(request.form.get("next"), app_path(url_for("outbox.index")))
    try:
        retry(message)
    except DomainError as exc:
        db.session.rollback()
        return refuse(str(exc), back=next_url)
    audit.record(
        "email.retry",
        target=message,
        target_user=message.user,
        summary=f"Retry of the {message.kind} email to {message.recipient}",
    )
    db.session.commit()
    text = f"The email to {message.recipient} is queued again."
    if wants_partial():
        html = render_template("outbox/_row.html", message=message, next_url=next_url)
        return toast(make_response(html), text)
    flash(text, "success")
    return go_back(next_url)
