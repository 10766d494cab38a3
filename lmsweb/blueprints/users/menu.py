"""Users: a row's "More" menu, loaded when it opens (the list carries only the primary
action per row, which keeps a page of 50 users small)."""

from __future__ import annotations

from flask import request

from ...params import parse_int
from ...rendering import render
from ...security import scoped
from ...user_queries import get_user_or_404
from . import bp


@bp.route("/<id:user_id>/menu")
@scoped
def row_menu(user_id: int):
    """A user's actions: the "More" menu's items to htmx, a page of them otherwise."""
    user = get_user_or_404(user_id)
    return render("users/menu.html", "users/_menu.html", user=user)


# A queued invitation's status is asked again every 5 s, at most this many times (5 min).
INVITE_POLLS = 60


@bp.route("/<id:user_id>/invite-status")
@scoped
def invite_status(user_id: int):
    """A row's status icons, polled while its invitation is queued (`poll`: how many times
    so far); the answer stops polling once it is sent or failed, or after INVITE_POLLS."""
    user = get_user_or_404(user_id)
    polls = parse_int(request.args.get("poll"), INVITE_POLLS) or 0
    return render("users/invite_status.html", "users/_row_status.html", user=user, poll=polls + 1)
