"""Who an administrator (or a SCIM token) may reach: their scope.

An organisation-wide administrator has no scope (`users.scope_id` NULL) and reaches
everyone. A scoped one reaches the users whose location is one of the scope's locations or
who belong to one of its groups; an empty scope reaches nobody. A SCIM token may carry a
scope the same way.

Everything that lists or loads users narrows through `user_condition` (the Users list and
its count, "everyone matching", the export, the Dashboard) or `reaches` (one user by id),
so scope is enforced in one place. `current_rule()` is the rule of the request: the SCIM
token's when a SCIM client calls, else the signed-in administrator's.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import g, has_request_context
from flask_login import current_user
from sqlalchemy import ColumnElement, false, or_, select, true

from .extensions import db
from .models import Scope, User, scope_groups, scope_locations, user_groups


@dataclass(frozen=True)
class ScopeRule:
    """A scope's members, read once per request."""

    location_ids: frozenset[int]
    group_ids: frozenset[int]
    label: str

    @property
    def empty(self) -> bool:
        return not self.location_ids and not self.group_ids


def rule_for(scope_id: int | None) -> ScopeRule | None:
    """The rule of a scope by id; None (organisation-wide) for no scope."""
    if scope_id is None:
        return None
    scope = db.session.get(Scope, scope_id)
    if scope is None:  # cannot happen (RESTRICT), and must not widen if it did
        return ScopeRule(frozenset(), frozenset(), "nobody")
    locations = db.session.scalars(
        select(scope_locations.c.location_id).where(scope_locations.c.scope_id == scope_id)
    ).all()
    groups = db.session.scalars(
        select(scope_groups.c.group_id).where(scope_groups.c.scope_id == scope_id)
    ).all()
    return ScopeRule(frozenset(locations), frozenset(groups), scope.label)


_UNSET = object()


def current_rule() -> ScopeRule | None:
    """The request's scope: the SCIM token's, else the signed-in user's; None when
    organisation-wide (or outside a request: the CLI and the worker act for the
    organisation)."""
    if not has_request_context():
        return None
    cached = g.get("_scope_rule", _UNSET)
    if cached is not _UNSET:
        return cached  # type: ignore[return-value]
    token = g.get("scim_token")
    if token is not None:
        scope_id = token.scope_id
    elif current_user.is_authenticated:
        scope_id = current_user.scope_id
    else:
        scope_id = None
    rule = rule_for(scope_id)
    g._scope_rule = rule
    return rule


def forget_current_rule() -> None:
    """After changing the signed-in administrator's own scope within a request."""
    if has_request_context():
        g.pop("_scope_rule", None)


def is_organisation_wide() -> bool:
    return current_rule() is None


def user_condition(rule: ScopeRule | None = None, *, current: bool = True) -> ColumnElement[bool]:
    """SQL: the user (the `users` row) is in scope. With no rule given, the request's."""
    if rule is None and current:
        rule = current_rule()
    if rule is None:
        return true()
    parts: list[ColumnElement[bool]] = []
    if rule.location_ids:
        parts.append(User.location_id.in_(sorted(rule.location_ids)))
    if rule.group_ids:
        members = select(user_groups.c.user_id).where(
            user_groups.c.group_id.in_(sorted(rule.group_ids))
        )
        parts.append(User.id.in_(members))
    return or_(*parts) if parts else false()


def reaches(user: User, rule: ScopeRule | None = None, *, current: bool = True) -> bool:
    """Whether `user` is in scope (the request's scope when no rule is given)."""
    if rule is None and current:
        rule = current_rule()
    if rule is None:
        return True
    if user.location_id is not None and user.location_id in rule.location_ids:
        return True
    if not rule.group_ids:
        return False
    member = db.session.scalar(
        select(user_groups.c.user_id).where(
            user_groups.c.user_id == user.id,
            user_groups.c.group_id.in_(sorted(rule.group_ids)),
        )
    )
    return member is not None
