"""The Users list."""

from __future__ import annotations

from flask import request
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from ...extensions import db
from ...models import User
from ...rendering import render
from . import bp


@bp.route("")
def index():
    """List users (full page, or the table partial to htmx)."""
    page = request.args.get("page", 1, type=int) or 1
    per_page = min(max(request.args.get("per_page", 50, type=int) or 50, 1), 100)
    query = (
        select(User)
        .options(selectinload(User.groups), selectinload(User.location))
        .where(User.status != "archived")
        .order_by(User.last_name, User.first_name, User.id)
    )
    pagination = db.paginate(query, page=page, per_page=per_page, error_out=False)
    total = db.session.scalar(
        select(func.count()).select_from(User).where(User.status != "archived")
    )
    return render("users/index.html", "users/_table.html", pagination=pagination, total=total)
