"""Users: Export Users to Excel (the active users, or the list's filtered view): a sheet of
users and a sheet of their training records."""

from __future__ import annotations

from flask import request
from sqlalchemy import select

from ... import scope
from ...models import User, utcnow
from ...params import ids_arg
from ...roster_export import file_name, sheets
from ...security import scoped
from ...user_queries import STATUS, UserFilters, filtered_users
from ...xlsx import download, stream_sheets
from . import bp


@bp.route("/export.xlsx")
@scoped
def export_users():
    """Download the users as .xlsx: the active ones by default, else the filtered view."""
    ids = ids_arg("user_ids")
    if ids:
        # Checked rows: each id re-checked against the administrator's scope.
        users = select(User).where(User.id.in_(ids), scope.user_condition())
    else:
        filters = UserFilters.from_args(request.args)
        if STATUS not in request.args:
            filters.status = ["active"]
        users = filtered_users(filters)
    # Rows go from a server-side cursor through the streamed writer to the client, so the
    # download starts at once and a million users never sit in memory.
    today = utcnow().date()
    return download(file_name(today), stream_sheets(sheets(users, today)))
