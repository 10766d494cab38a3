"""Users: a row's "More" menu, loaded when it opens (the list carries only the primary
action per row, which keeps a page of 50 users small)."""

from __future__ import annotations

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
