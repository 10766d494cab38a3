"""Users: archive (the user, or only their course activity) and restore."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from flask import flash, make_response
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from wtforms import HiddenField, StringField
from wtforms.validators import AnyOf, InputRequired

from ... import audit, lifecycle, undo
from ...domain_error import DomainError
from ...extensions import db
from ...models import User
from ...navigation import back_to_list, go_back, refuse
from ...rendering import render, toast, wants_partial
from ...security import scoped
from ...user_queries import UserFilters, get_user_or_404
from . import bp
from .listing import row_answer

MODES = {"user": "Archive user", "activity": "Archive course activity only"}


class ArchiveForm(FlaskForm):
    mode = StringField(
        "What to archive",
        validators=[
            InputRequired(message="Choose what to archive."),
            AnyOf(list(MODES), message="Choose what to archive."),
        ],
    )
    next = HiddenField()


class RestoreForm(FlaskForm):
    next = HiddenField()


def _list_shows(next_url: str, user: User) -> bool:
    """Does the list at `next_url` show users with this user's status?"""
    query = urlsplit(next_url).query
    filters = UserFilters.from_args(MultiDict(parse_qsl(query, keep_blank_values=True)))
    return user.status in filters.status


def seats_phrase(plan: lifecycle.ArchivePlan) -> str:
    """e.g. "2 seats returned (GDPR-101: 1, HS-200: 1)"."""
    returned = plan.seats_returned
    total = sum(returned.values())
    if not total:
        return "no seats returned"
    per_course = ", ".join(f"{code}: {n}" for code, n in sorted(returned.items()))
    return f"{total} {'seat' if total == 1 else 'seats'} returned ({per_course})"


def _row_response(user: User, next_url: str, message: str, offer: dict | None = None):
    """htmx: the re-rendered row, or nothing when the list hides the user now; plus a toast."""
    response = make_response(row_answer(user, next_url, shown=_list_shows(next_url, user)))
    response.headers.add("Vary", "HX-Request")
    return toast(response, message, undo=offer, closeDialog=True)


@bp.route("/<id:user_id>/archive", methods=["GET"])
@scoped
def confirm_archive(user_id: int):
    """Show what archiving this user would do, with the two choices."""
    user = get_user_or_404(user_id)
    plan = lifecycle.archive_plan(user)
    form = ArchiveForm(formdata=None, next=back_to_list())
    return render(
        "users/archive.html", "users/_archive_dialog.html", user=user, plan=plan, form=form
    )


@bp.route("/<id:user_id>/archive", methods=["POST"])
@scoped
def archive(user_id: int):
    """Archive the user (mode=user) or only their open course activity (mode=activity)."""
    user = get_user_or_404(user_id)
    form = ArchiveForm()
    next_url = back_to_list(form.next.data)
    if not form.validate():
        plan = lifecycle.archive_plan(user)
        response = render(
            "users/archive.html",
            "users/_archive_dialog.html",
            status=422,
            user=user,
            plan=plan,
            form=form,
        )
        # The dialog's form targets the row; its errors belong in the dialog.
        response.headers["HX-Retarget"] = "#dialog-root"
        response.headers["HX-Reswap"] = "innerHTML"
        return response
    mode = form.mode.data
    try:
        # Read before archive() changes it; what Undo puts back.
        prior_status = user.status
        plan = lifecycle.archive(user, mode, actor=current_user)
    except DomainError as exc:
        db.session.rollback()
        return refuse(exc.message, back=next_url)
    kept = len(plan.started)
    what = f"Archived {user.name}" if mode == "user" else f"Archived {user.name}'s course activity"
    message = (
        f"{what}: {len(plan.unstarted)} unstarted "
        f"{'course' if len(plan.unstarted) == 1 else 'courses'} archived, {seats_phrase(plan)}; "
        f"{kept} started {'record keeps its seat' if kept == 1 else 'records keep their seats'}."
    )
    event = audit.record(
        "user.archive" if mode == "user" else "user.archive_activity",
        target=user,
        summary=message,
        details={
            "mode": mode,
            "archived_unstarted": [a.id for a in plan.unstarted],
            "archived_started": [a.id for a in plan.started],
            "seats_returned": dict(plan.seats_returned),
            "status": user.status,
        },
    )
    offer = undo.offer(
        event,
        "user_archive",
        current_user._get_current_object(),
        mode=mode,
        status=prior_status,
        at=undo.stamp(user.archived_at),
        records=[undo.archived_assignment(a) for a in plan.unstarted + plan.started],
    )
    db.session.commit()
    if wants_partial():
        return _row_response(user, next_url, message, offer)
    flash(message, "success")
    return go_back(next_url)


@bp.route("/<id:user_id>/restore", methods=["POST"])
@scoped
def restore(user_id: int):
    """Restore an archived user to active; their archived records stay archived."""
    user = get_user_or_404(user_id)
    form = RestoreForm()
    next_url = back_to_list(form.next.data)
    if not lifecycle.restore(user):
        return refuse(f"{user.name} is not archived.", back=next_url)
    message = f"Restored {user.name}: active again; their archived training records stay archived."
    audit.record(
        "user.restore",
        target=user,
        summary=message,
        details={"status": {"from": "archived", "to": user.status}},
    )
    db.session.commit()
    if wants_partial():
        return _row_response(user, next_url, message)
    flash(message, "success")
    return go_back(next_url)
