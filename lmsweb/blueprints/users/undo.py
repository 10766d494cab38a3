"""Users: the Undo button of a toast (see lmsweb/undo.py)."""

from __future__ import annotations

from flask import Response, flash, make_response, request, url_for
from flask_login import current_user

from ... import undo
from ...domain_error import DomainError
from ...extensions import db
from ...navigation import app_path, back_to_list, go_back, refuse, safe_next
from ...rendering import toast
from ...security import scoped
from . import bp


@bp.route("/undo", methods=["POST"])
@scoped
def undo_change():
    """Reverse the change a toast offered to undo, or say why it cannot be."""
    back = safe_next(request.form.get("next"), app_path(url_for("users.index")))
    try:
        done = undo.perform(request.form.get("token", ""), current_user._get_current_object())
    except DomainError as error:
        db.session.rollback()
        return refuse(error.message, back=back)
    db.session.commit()
    if not request.htmx:
        flash(done.message, "success")
        return go_back(back)
    if done.user is None:  # a bulk action's: the page reloads its list (see app.js)
        return toast(make_response("", 204), done.message, usersChanged=True)
    return toast(_fragment(done), done.message, undone={"user": done.user.id})


def _fragment(done: undo.Undone) -> Response:
    """What the toast's Undo asked to refresh: the open Course assignments dialog, the
    user's row, or nothing (HX-Target says which, as the client chose it)."""
    target = request.headers.get("HX-Target", "")
    if target == "courses-dialog-body":
        from .assignments import _courses_view

        return _courses_view(done.user)
    if target == f"user-{done.user.id}":
        from .listing import row_answer

        return make_response(row_answer(done.user, back_to_list(request.form.get("next"))))
    return make_response("", 204)
