"""Users: bulk actions on the checked rows or on everyone the list's filter matches."""

from __future__ import annotations

from flask import make_response, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.datastructures import MultiDict
from wtforms import DateField, HiddenField, IntegerField, SelectMultipleField, StringField
from wtforms.validators import AnyOf, DataRequired, Length, Optional

from ... import bulk_actions, scope, undo
from ...bulk_actions import ACTIONS, Params, Selection
from ...domain_error import DomainError
from ...extensions import db
from ...models import Course, Group
from ...navigation import refuse
from ...params import MAX_IDS, coerce_id, in_range
from ...rendering import see_other, toast, wants_partial
from ...security import scoped
from ...user_queries import FILTER_PARAMS, UserFilters
from . import bp
from .listing import list_context

# The list's state comes with the bulk form as `filter_<name>`: `group` is also an action's field.
STATE_PREFIX = "filter_"


TOO_MANY = (
    f"At most {MAX_IDS:,} users can be checked at once; select all users matching the "
    "filters instead."
)


class BulkForm(FlaskForm):
    action = StringField(
        "Action",
        validators=[
            DataRequired(message="Choose an action."),
            AnyOf(list(ACTIONS), message="Choose one of the listed actions."),
        ],
    )
    user_ids = SelectMultipleField(
        "Users",
        coerce=coerce_id,
        validate_choice=False,
        validators=[Length(max=MAX_IDS, message=TOO_MANY)],
    )
    select_all = HiddenField()
    group = IntegerField("Group", validators=[Optional(), in_range()])
    course = IntegerField("Course", validators=[Optional(), in_range()])
    due_date = DateField("Due date", validators=[Optional()])
    confirm = HiddenField()
    fit = HiddenField()


def list_filters(form, action=None) -> UserFilters:
    """The list's state as it came with the bulk form. Scripts may send the plain names
    instead (then an action's own field wins over the filter of the same name)."""
    if any(key.startswith(STATE_PREFIX) for key in form):
        return UserFilters.from_args(form, prefix=STATE_PREFIX)
    own = set(action.fields) if action else set()
    return UserFilters.from_args(
        MultiDict((k, v) for k, v in form.items(multi=True) if k not in own)
    )


def _list_url(action=None) -> str:
    return url_for(
        "users.index", **list_filters(request.form, action).to_args().to_dict(flat=False)
    )


def bulk_options() -> dict:
    """Groups and courses for the action bar's fields (queried only when the bar renders)."""
    return {
        "groups": list(
            db.session.scalars(select(Group).where(scope.assignable()).order_by(Group.name))
        ),
        "courses": list(db.session.scalars(select(Course).order_by(Course.code))),
    }


@bp.app_context_processor
def bulk_context():
    return {"bulk_actions": list(ACTIONS.values()), "bulk_options": bulk_options}


def _message(text: str, status: int, level: str = "error"):
    """A refusal. htmx: invalid input (422, swapped) goes to the action bar's result region;
    other refusals are plain text, which app.js shows as an error toast. Otherwise a page."""
    if request.htmx and status != 422:
        return refuse(text, status)
    if wants_partial():
        response = make_response(
            render_template("users/_bulk_result.html", message=text, level=level), status
        )
        response.headers["HX-Retarget"] = "#bulk-result"
        response.headers["HX-Reswap"] = "outerHTML"
        return toast(response, text, level)
    back = _list_url()
    return make_response(
        render_template("users/bulk_result.html", message=text, level=level, back=back), status
    )


@bp.route("/bulk", methods=["POST"])
@scoped
def bulk():
    """Run a bulk action on the checked users or on everyone matching the filters."""
    form = BulkForm()
    if not form.validate():
        errors = " ".join(e for errs in form.errors.values() for e in errs)
        return _message(errors or "Check the form and try again.", 422)
    action = ACTIONS[form.action.data]
    if not action.permission(current_user):
        return _message("You are not allowed to do that.", 403)

    if form.select_all.data == "matching":
        selection = Selection(filters=list_filters(request.form, action))
    else:
        selection = Selection(ids=list(dict.fromkeys(form.user_ids.data or [])))
        if not selection.ids:
            return _message(
                "No users are selected. Check some rows, or select all users matching "
                "the filters, then choose the action again.",
                422,
                "warning",
            )
    count = bulk_actions.count_targets(selection)
    if count == 0:
        return _message("No users match this selection; nothing was changed.", 422, "warning")

    if action.name == "export":
        if selection.matching:
            args = selection.filters.to_args(params=FILTER_PARAMS, defaults=True)
        else:
            args = MultiDict(("user_ids", str(i)) for i in selection.ids or [])
        return see_other(url_for("users.export_users", **args.to_dict(flat=False)))

    params = Params(actor=current_user._get_current_object(), due_date=form.due_date.data)
    if "group" in action.fields and form.group.data:
        params.group = db.session.get(Group, form.group.data)
    if "course" in action.fields and form.course.data:
        params.course = db.session.get(Course, form.course.data)
    if params.group is not None and (
        scope.groups_refusal({params.group.id}, set())
        if action.name == "add_group"
        else db.session.scalar(
            select(Group.id).where(Group.id == params.group.id, scope.visible(Group))
        )
        is None
    ):
        return _message(scope.GROUPS_OF_SCOPE.format(label=scope.current_rule().label), 403)
    for name in action.required:
        if getattr(params, name) is None:
            return _message(f"Choose a {name} for “{action.label}”.", 422)

    fit = form.fit.data == "1"
    params.fit = fit
    if action.needs_confirmation and form.confirm.data != "1":
        return _confirm(action, selection, params, count)

    try:
        result = bulk_actions.run(action, selection, params)
        offer = undo.bulk_offer(result.event, params.actor)
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        return _message(exc.message, 409)
    except IntegrityError:
        db.session.rollback()
        return _message(
            "Some of these users changed while the action ran; nothing was changed. "
            "Please try again.",
            409,
        )
    return _done(action, result, offer)


def _confirm(action, selection: Selection, params: Params, count: int):
    """Destructive and license-consuming actions: the count and impact come first."""
    impact = bulk_actions.license_impact(selection, params) if action.consumes_licenses else None
    carry = [
        (k, v)
        for k, v in request.form.items(multi=True)
        if k not in ("csrf_token", "confirm", "fit")
    ]
    context = {
        "action": action,
        "count": count,
        "impact": impact,
        "carry": carry,
        "params": params,
        "back": _list_url(action),
        "question": action.confirm.format(count=f"{count} {'user' if count == 1 else 'users'}"),
    }
    if wants_partial():
        response = make_response(
            render_template("users/_bulk_confirm.html", dialog=True, **context)
        )
        response.headers["HX-Retarget"] = "#dialog-root"
        response.headers["HX-Reswap"] = "innerHTML"
        return response
    return render_template("users/bulk_confirm.html", dialog=False, **context)


def _done(action, result, offer=None):
    """htmx: the summary (out of band) and the refreshed table; otherwise a result page."""
    summary = result.summary()
    level = "success" if result.done else "warning"
    if wants_partial():
        filters = list_filters(request.form, action)
        body = render_template(
            "users/_bulk_result.html", result=result, message=summary, level=level, oob=True
        ) + render_template("users/_table.html", **list_context(filters))
        return toast(
            make_response(body), summary, level, undo=offer, closeDialog=True, usersChanged=True
        )
    back = _list_url(action)
    return render_template(
        "users/bulk_result.html",
        result=result,
        message=summary,
        level=level,
        back=back,
        offer=offer,
    )
