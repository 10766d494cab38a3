"""The Users list."""

from __future__ import annotations

from typing import Any

from flask import request
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from ...extensions import db
from ...models import User
from ...rendering import render
from ...user_queries import UserFilters, filtered_users, parse_filters
from . import bp


def table_context(filters: UserFilters) -> dict[str, Any]:
    """What `users/_table.html` shows for `filters` (also re-rendered after bulk actions)."""
    query = filtered_users(filters)
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    pagination = db.paginate(
        query.options(selectinload(User.groups), selectinload(User.location)).order_by(
            User.last_name, User.first_name, User.id
        ),
        page=filters.page,
        per_page=filters.per_page,
        error_out=False,
        count=False,
    )
    return {"pagination": pagination, "total": total, "filters": filters}


@bp.route("")
def index():
    """List users (full page, or the table partial to htmx)."""
    filters = parse_filters(request.args)
    return render("users/index.html", "users/_table.html", **table_context(filters))
