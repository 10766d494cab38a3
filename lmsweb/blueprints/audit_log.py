"""Admin area: the audit log, filterable, paged and exportable."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from functools import lru_cache

from flask import Blueprint, request
from flask_wtf import FlaskForm
from sqlalchemy import Select, Text, cast, func, or_, select
from sqlalchemy.orm import aliased, joinedload
from werkzeug.datastructures import MultiDict
from wtforms import DateField, SearchField, SelectField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional, ValidationError

from .. import audit, scope
from ..extensions import db
from ..models import AuditEvent, User, actor_label, utcnow
from ..params import page_arg
from ..rendering import render
from ..security import scoped
from ..xlsx import download, excel_time, stream_rows, stream_workbook

bp = Blueprint("audit_log", __name__, url_prefix="/admin/audit")


@bp.app_template_global()
def describe_target(event: AuditEvent) -> str:
    """The event's target as a person reads it."""
    if event.target_user is not None:
        return event.target_user.email
    if event.target_type:
        return f"{event.target_type} #{event.target_id}" if event.target_id else event.target_type
    return ""


@bp.app_template_global()
def details_text(event: AuditEvent) -> str:
    return json.dumps(event.details, sort_keys=True, default=str) if event.details else ""


PER_PAGE = 50
FILTER_FIELDS = ("actor", "action", "target", "date_from", "date_to")


class AuditFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET filter form: nothing to forge

    actor = SearchField("Actor", validators=[Optional(), Length(max=100)])
    action = SelectField("Action", choices=[SelectChoice("", "Any action")], default="")
    target = SearchField("Target user", validators=[Optional(), Length(max=100)])
    date_from = DateField("From", validators=[Optional()])
    date_to = DateField("To", validators=[Optional()])

    def validate_date_to(self, field):
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError("The end date is before the start date.")


def _filter_form() -> AuditFilterForm:
    form = AuditFilterForm(formdata=MultiDict(request.args))
    actions = db.session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action))
    form.action.choices = [SelectChoice("", "Any action"), *(SelectChoice(a) for a in actions)]
    return form


def _person_matches(model, text: str):
    pattern = f"%{text.lower()}%"
    return or_(
        func.lower(model.email).like(pattern),
        func.lower(model.first_name + " " + model.last_name).like(pattern),
    )


def filtered_events(form: AuditFilterForm) -> Select:
    """The events the (validated) filters select, newest first."""
    actor, target = aliased(User), aliased(User)
    query = select(AuditEvent)
    if (rule := scope.current_rule()) is not None:
        # A scoped administrator reads the events about their people only (#17).
        query = query.where(AuditEvent.target_user_id.in_(scope.in_scope_ids(rule)))
    if form.actor.data:
        query = query.join(actor, AuditEvent.actor_id == actor.id).where(
            _person_matches(actor, form.actor.data)
        )
    if form.action.data:
        query = query.where(AuditEvent.action == form.action.data)
    if form.target.data:
        query = query.join(target, AuditEvent.target_user_id == target.id).where(
            _person_matches(target, form.target.data)
        )
    if form.date_from.data:
        query = query.where(AuditEvent.created_at >= datetime.combine(form.date_from.data, time()))
    if form.date_to.data:
        end = datetime.combine(form.date_to.data + timedelta(days=1), time())
        query = query.where(AuditEvent.created_at < end)
    return query.order_by(AuditEvent.id.desc())


def _eager(query: Select) -> Select:
    return query.options(joinedload(AuditEvent.actor), joinedload(AuditEvent.target_user))


def filter_args(form: AuditFilterForm) -> dict[str, str]:
    """The active filters as query parameters, for page and export links."""
    return {name: request.args[name] for name in FILTER_FIELDS if request.args.get(name)}


@bp.route("")
@scoped
def index():
    """List audit events (full page, or the results partial to htmx)."""
    form = _filter_form()
    if not form.validate():
        return render(
            "audit/index.html", "audit/_results.html", status=422, form=form, pagination=None
        )
    pagination = db.paginate(
        _eager(filtered_events(form)),
        page=page_arg(),
        per_page=PER_PAGE,
        error_out=False,
    )
    return render(
        "audit/index.html",
        "audit/_results.html",
        form=form,
        pagination=pagination,
        args=filter_args(form),
    )


@bp.route("/export.xlsx")
@scoped
def export_events():
    """Download the filtered audit log as an Excel workbook."""
    form = _filter_form()
    if not form.validate():
        return render(
            "audit/index.html", "audit/_results.html", status=422, form=form, pagination=None
        )
    # Recorded before the rows are sent (a stream has no "after" in which to write it), so
    # the export is bounded to the events that existed then: the count is what is sent.
    last_id = db.session.scalar(select(func.max(AuditEvent.id))) or 0
    events = filtered_events(form).where(AuditEvent.id <= last_id)
    written = db.session.scalar(select(func.count()).select_from(events.order_by(None).subquery()))
    audit.record(
        "audit.export",
        summary=f"Exported {written} audit events",
        details={"filters": filter_args(form)},
    )
    db.session.commit()
    rows = _export_rows(events)
    return download(
        f"audit-log-{utcnow():%Y-%m-%d}.xlsx",
        stream_workbook(
            "Audit log",
            ["Time (UTC)", "Actor", "Action", "Target", "Summary", "Details"],
            rows,
            widths=[18, 30, 24, 30, 50, 60],
            kinds="sttttt",
        ),
    )


# Canonical texts of details already seen: events of one kind often carry the same details
# ({"before": "pending", "after": "active"}), and parsing and re-sorting each was a good
# part of a row's time.
_DETAILS_CACHE = 4096


def _export_rows(events: Select):
    """The events as rows, from a server-side cursor in batches; the people and target
    users joined in the same query (no ORM objects: 100,000 of them cost seconds). Details
    arrive as their stored JSON text and are spelled with sorted keys once per text."""
    actor, target = aliased(User), aliased(User)
    query = (
        events.with_only_columns(
            excel_time(AuditEvent.created_at),
            actor.email,
            AuditEvent.action,
            target.email,
            AuditEvent.target_type,
            AuditEvent.target_id,
            AuditEvent.summary,
            cast(AuditEvent.details, Text),
            maintain_column_froms=True,
        )
        .outerjoin(actor, AuditEvent.actor_id == actor.id)
        .outerjoin(target, AuditEvent.target_user_id == target.id)
    )

    @lru_cache(maxsize=_DETAILS_CACHE)
    def spelled(text: str) -> str:
        details = json.loads(text)
        return json.dumps(details, sort_keys=True, default=str) if details else ""

    for (
        when,
        actor_email,
        action,
        target_email,
        kind,
        target_id,
        summary,
        details,
    ) in stream_rows(query, 1000):
        if target_email is not None:
            described = target_email
        elif kind:
            described = f"{kind} #{target_id}" if target_id else kind
        else:
            described = ""
        yield (
            when,
            actor_email
            if actor_email is not None
            else actor_label(None, json.loads(details) if details else None),
            action,
            described,
            summary,
            spelled(details) if details else "",
        )
