"""Users: a row's "More" menu, loaded when it opens (the list carries only the primary
action per row, which keeps a page of 50 users small)."""

from __future__ import annotations

from ...extensions import db
from ...models import User
from ...rendering import render
from . import bp


@bp.route("/<int:user_id>/menu")
def row_menu(user_id: int):
    """A user's actions: the "More" menu's items to htmx, a page of them otherwise."""
    user = db.get_or_404(User, user_id)
    return render("users/menu.html", "users/_menu.html", user=user)
