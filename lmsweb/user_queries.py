"""The Users list state (filters, search, sort, page) and the query it selects.

One function turns the validated state into a `Select`; the list, bulk actions
("everyone matching") and the export all use it, so they always agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Select, or_, select
from werkzeug.datastructures import MultiDict

from .models import User, user_groups

PER_PAGE_CHOICES = (25, 50, 100)
DEFAULT_STATUSES = ("pending", "active")


@dataclass
class UserFilters:
    q: str = ""
    location: list[int] = field(default_factory=list)
    group: list[int] = field(default_factory=list)
    status: list[str] = field(default_factory=lambda: list(DEFAULT_STATUSES))
    role: list[str] = field(default_factory=list)
    sort: str = "name"
    page: int = 1
    per_page: int = 50


def parse_filters(args: MultiDict) -> UserFilters:
    """Read the list state from query (or form) parameters; bad values are ignored."""
    filters = UserFilters()
    filters.q = (args.get("q") or "").strip()[:100]
    filters.location = [int(v) for v in args.getlist("location") if v.isdigit()]
    filters.group = [int(v) for v in args.getlist("group") if v.isdigit()]
    statuses = [s for s in args.getlist("status") if s in ("pending", "active", "archived")]
    if statuses:
        filters.status = statuses
    filters.role = [r for r in args.getlist("role") if r in ("learner", "admin")]
    page = args.get("page", "1")
    filters.page = int(page) if page.isdigit() and int(page) > 0 else 1
    per_page = args.get("per_page", "")
    filters.per_page = (
        int(per_page) if per_page.isdigit() and int(per_page) in PER_PAGE_CHOICES else 50
    )
    return filters


def filtered_users(filters: UserFilters) -> Select[tuple[User]]:
    """Users matching the filters, unordered (callers add ordering or aggregate)."""
    query = select(User)
    if filters.status:
        query = query.where(User.status.in_(filters.status))
    if filters.role:
        query = query.where(User.role.in_(filters.role))
    if filters.location:
        query = query.where(User.location_id.in_(filters.location))
    if filters.group:
        members = select(user_groups.c.user_id).where(user_groups.c.group_id.in_(filters.group))
        query = query.where(User.id.in_(members))
    if filters.q:
        # Simple substring match; the Users-list work replaces it with an indexed strategy.
        pattern = f"%{filters.q.lower()}%"
        query = query.where(
            or_(
                User.first_name.ilike(pattern),
                User.last_name.ilike(pattern),
                User.email.ilike(pattern),
                User.employee_id.ilike(pattern),
            )
        )
    return query
