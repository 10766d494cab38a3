"""Who an administrator (or a SCIM token) may reach: their scope.

An organisation-wide administrator has no scope (`users.scope_id` NULL) and reaches
everyone. A scoped one reaches the users whose location is one of the scope's locations or
who belong to one of its groups; an empty scope reaches nobody. A SCIM token may carry a
scope the same way.

Everything that lists or loads users narrows through `user_condition` (the Users list and
its count, "everyone matching", the export, the Dashboard) or `reaches` (one user by id),
so scope is enforced in one place. `user_condition` reads the scope's members from
`scope_members`, which the database keeps equal to the definition (`defined_condition`) by
triggers (migration 0013_scope_members): one index range, where the definition is an OR of
a location and a group membership asked of every user. `current_rule()` is the rule of the
request: the SCIM token's when a SCIM client calls, else the signed-in administrator's.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import g, has_request_context
from flask_login import current_user
from sqlalchemy import ColumnElement, Select, false, func, literal, or_, select, text, true

from .domain_error import DomainError
from .extensions import db
from .models import (
    Group,
    Location,
    ScimToken,
    Scope,
    User,
    scope_groups,
    scope_locations,
    scope_members,
    user_groups,
)


@dataclass(frozen=True)
class ScopeRule:
    """A scope's members, read once per request."""

    location_ids: frozenset[int]
    group_ids: frozenset[int]
    label: str
    # The scope's row: its members are in scope_members. None for a rule of no stored scope
    # (tests), which is tested against its definition.
    scope_id: int | None = None

    @property
    def empty(self) -> bool:
        return not self.location_ids and not self.group_ids


def rule_for(scope_id: int | None) -> ScopeRule | None:
    """The rule of a scope by id; None (organisation-wide) for no scope."""
    if scope_id is None:
        return None
    # Two queries: the members with their names (for the label, as Scope.label spells it).
    locations = db.session.execute(
        select(Location.id, Location.name)
        .join(scope_locations, scope_locations.c.location_id == Location.id)
        .where(scope_locations.c.scope_id == scope_id)
        .order_by(Location.name)
    ).all()
    groups = db.session.execute(
        select(Group.id, Group.name)
        .join(scope_groups, scope_groups.c.group_id == Group.id)
        .where(scope_groups.c.scope_id == scope_id)
        .order_by(Group.name)
    ).all()
    # A scope that is gone (cannot happen: RESTRICT) or empty reaches nobody; never widen.
    label = ", ".join(name for _id, name in [*locations, *groups]) or "nobody"
    return ScopeRule(
        frozenset(i for i, _n in locations), frozenset(i for i, _n in groups), label, scope_id
    )


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


def user_condition(
    rule: ScopeRule | None = None,
    *,
    current: bool = True,
    walk: bool = False,
    hashed: bool = False,
) -> ColumnElement[bool]:
    """SQL: the user (the `users` row) is in scope. With no rule given, the request's.

    `walk`: membership tested row by row (one primary key probe of scope_members per row),
    for a page read along a name-ordered index (see `user_queries.filtered_users`).
    `hashed`: tested row by row against the scope's members read once (PostgreSQL hashes
    the subquery: `IS TRUE` keeps it from becoming a join), for a walk far down the order,
    where a probe per row costs more than reading the scope (page 1,000 of a million users,
    400,000 rows walked: 250 ms probed, 90 ms hashed)."""
    if rule is None and current:
        rule = current_rule()
    if rule is None:
        return true()
    if rule.scope_id is None:
        return defined_condition(rule)
    members = _members(rule.scope_id)
    if hashed:
        return User.id.in_(members).is_(true())
    if walk:
        return members.where(scope_members.c.user_id == User.id).exists()
    return User.id.in_(members)


def _members(scope_id: int) -> Select:
    """SQL: the ids of the scope's members, a range of `scope_members`."""
    return select(scope_members.c.user_id).where(scope_members.c.scope_id == scope_id)


def defined_condition(rule: ScopeRule) -> ColumnElement[bool]:
    """SQL: the user is at one of the rule's locations or in one of its groups: the
    definition `scope_members` is kept equal to (and is checked against)."""
    parts: list[ColumnElement[bool]] = []
    if rule.location_ids:
        parts.append(User.location_id.in_(sorted(rule.location_ids)))
    if rule.group_ids:
        members = select(user_groups.c.user_id).where(
            user_groups.c.group_id.in_(sorted(rule.group_ids))
        )
        parts.append(User.id.in_(members))
    return or_(*parts) if parts else false()


def members_drift() -> list[str]:
    """How `scope_members` differs from the definition, one line per scope that differs
    (missing and extra users, and users whose copied status or role is stale); empty when
    they agree. For `flask lms check`."""
    m = scope_members
    problems = []
    for scope_id in db.session.scalars(select(Scope.id).order_by(Scope.id)):
        defined = select(User.id, User.status, User.role).where(
            defined_condition(rule_for(scope_id))  # type: ignore[arg-type]
        )
        stored = select(m.c.user_id, m.c.status, m.c.role).where(m.c.scope_id == scope_id)
        missing = db.session.execute(defined.except_(stored)).all()
        extra = db.session.execute(stored.except_(defined)).all()
        stale = {row[0] for row in missing} & {row[0] for row in extra}
        missing_ids = sorted({row[0] for row in missing} - stale)
        extra_ids = sorted({row[0] for row in extra} - stale)
        if missing_ids or extra_ids or stale:
            problems.append(
                f"SCOPE {scope_id}: {len(missing_ids)} missing {missing_ids[:5]}, "
                f"{len(extra_ids)} extra {extra_ids[:5]}, "
                f"{len(stale)} with a stale status or role {sorted(stale)[:5]}"
            )
    return problems


def repair_members() -> None:
    """Rewrite `scope_members` from the definition (after `members_drift` found a scope
    drifted: written around the triggers, or they were dropped)."""
    m = scope_members
    db.session.execute(m.delete())
    for scope_id in db.session.scalars(select(Scope.id).order_by(Scope.id)):
        reached = select(literal(scope_id), User.id, User.status, User.role).where(
            defined_condition(rule_for(scope_id))
        )  # type: ignore[arg-type]
        db.session.execute(
            m.insert().from_select(["scope_id", "user_id", "status", "role"], reached)
        )


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


# --- what a scoped administrator is shown and may change (#17) ------------------------------

OUT_OF_SCOPE = "That user is outside your scope."
NOT_ADMINS = "Only an organisation-wide administrator can change administrators."


def in_scope_ids(rule: ScopeRule | None = None) -> Select:
    """SQL: the ids of the users in scope (for narrowing rows that point at a user): the
    scope's range of `scope_members`, no user's row read."""
    rule = rule if rule is not None else current_rule()
    if rule is not None and rule.scope_id is not None:
        return _members(rule.scope_id)
    return select(User.id).where(user_condition(rule, current=False))


def visible_location_ids(rule: ScopeRule) -> set[int]:
    """The locations a scoped administrator may see named: the scope's own and those of
    its groups' members (who are in scope wherever they are)."""
    ids = set(rule.location_ids)
    if rule.group_ids:
        members = select(user_groups.c.user_id).where(
            user_groups.c.group_id.in_(sorted(rule.group_ids))
        )
        ids.update(
            db.session.scalars(
                select(User.location_id)
                .where(User.id.in_(members), User.location_id.is_not(None))
                .distinct()
            )
        )
    return ids


def visible_group_ids(rule: ScopeRule) -> set[int]:
    """The groups a scoped administrator may see named: the scope's own and those of the
    users in scope."""
    ids = set(rule.group_ids)
    if rule.location_ids:
        at = select(User.id).where(User.location_id.in_(sorted(rule.location_ids)))
        ids.update(
            db.session.scalars(
                select(user_groups.c.group_id).where(user_groups.c.user_id.in_(at)).distinct()
            )
        )
    return ids


def visible(model, rule: ScopeRule | None = None) -> ColumnElement[bool]:
    """SQL: the Location (or Group) row may be named to the request's administrator: the
    scope's own, or one that someone in scope is at (belongs to). Tested row by row
    (EXISTS): naming the one location a list is filtered by finds its first person in scope
    in a few rows, where the whole set (`visible_location_ids`) reads every member of the
    scope's groups (8,400 at 100,000 users)."""
    rule = rule if rule is not None else current_rule()
    if rule is None:
        return true()
    if model is Location:
        own, other_side = rule.location_ids, rule.group_ids
        someone = (
            select(User.id)
            .join(user_groups, user_groups.c.user_id == User.id)
            .where(User.location_id == Location.id)
        )
        someone = someone.where(user_groups.c.group_id.in_(sorted(other_side)))
    else:
        own, other_side = rule.group_ids, rule.location_ids
        someone = (
            select(user_groups.c.user_id)
            .join(User, User.id == user_groups.c.user_id)
            .where(user_groups.c.group_id == Group.id)
        )
        someone = someone.where(User.location_id.in_(sorted(other_side)))
    parts = []
    if own:
        parts.append(model.id.in_(sorted(own)))
    if other_side:
        parts.append(someone.exists())
    return or_(*parts) if parts else false()


def may_act_on(user: User) -> str | None:
    """Why the request's administrator may not act on `user` (None: they may). A scoped
    administrator reaches only their people, and never another administrator."""
    rule = current_rule()
    if rule is None:
        return None
    if not reaches(user, rule):
        return OUT_OF_SCOPE
    if user.role == "admin":
        return NOT_ADMINS
    return None


def lands_in_scope(location_id: int | None, group_ids: set[int] | list[int]) -> bool:
    """Whether a user at `location_id` in `group_ids` is in the request's scope."""
    rule = current_rule()
    if rule is None:
        return True
    return (location_id is not None and location_id in rule.location_ids) or bool(
        set(group_ids) & rule.group_ids
    )


def landing_refusal(location_id: int | None, group_ids) -> str | None:
    """The message when a user would land outside the request's scope."""
    if lands_in_scope(location_id, group_ids):
        return None
    return (
        f"Choose a location or group of your scope ({current_rule().label}): "  # type: ignore[union-attr]
        "a user outside it would be out of your reach."
    )


def new_scope(locations: list[Location], groups: list[Group]) -> Scope | None:
    """A scope of these locations and groups, stored (the triggers fill `scope_members` with
    its people), or None for neither: organisation-wide. The one way an administrator's or
    a SCIM token's scope is made.

    On PostgreSQL the planner's statistics of `scope_members` are taken again in the same
    transaction (ANALYZE counts this transaction's own rows): until autovacuum's next pass
    they described the table without the new scope's people, and at a million users a new
    scope's Dashboard took 245 ms a page (a hash join of its 120,000 members) instead of 28
    ms. About 40 ms at 250,000 rows; scopes change rarely."""
    if not locations and not groups:
        return None
    created = Scope(locations=list(locations), groups=list(groups))
    db.session.add(created)
    db.session.flush()
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("ANALYZE scope_members"))
    return created


def set_scope(admin: User, locations: list[Location], groups: list[Group]) -> Scope | None:
    """Make `admin` organisation-wide (no locations or groups) or scoped to them; the old
    scope row goes. The caller audits and ends the administrator's sessions."""
    old = admin.scope
    admin.scope = new_scope(locations, groups)
    db.session.flush()
    if old is not None and old is not admin.scope:
        still_used = db.session.scalar(
            select(User.id).where(User.scope_id == old.id).limit(1)
        ) or db.session.scalar(select(ScimToken.id).where(ScimToken.scope_id == old.id).limit(1))
        if still_used is None:
            db.session.delete(old)
    return admin.scope


def by_names(location_names: list[str], group_names: list[str]) -> tuple[list, list]:
    """The locations and groups so named (case-insensitively); DomainError naming every
    unknown one."""

    def find(model, names: list[str]) -> tuple[list, list[str]]:
        found, unknown = [], []
        for name in dict.fromkeys(" ".join(n.split()) for n in names):
            row = db.session.scalar(select(model).where(func.lower(model.name) == name.lower()))
            (found.append(row) if row is not None else unknown.append(name))
        return found, unknown

    locations, unknown_locations = find(Location, location_names)
    groups, unknown_groups = find(Group, group_names)
    problems = []
    if unknown_locations:
        problems.append("no location named " + ", ".join(map(repr, unknown_locations)))
    if unknown_groups:
        problems.append("no group named " + ", ".join(map(repr, unknown_groups)))
    if problems:
        raise DomainError("There is " + "; and ".join(problems) + ". Nothing was created.")
    return locations, groups


def naming_scopes(model, item_id: int) -> int:
    """How many scopes name the location (or group) `item_id`."""
    table, column_ = (
        (scope_locations, scope_locations.c.location_id)
        if model is Location
        else (scope_groups, scope_groups.c.group_id)
    )
    return db.session.scalar(select(func.count()).select_from(table).where(column_ == item_id)) or 0


GROUPS_OF_SCOPE = "You can only give groups of your scope ({label})."


def assignable(rule: ScopeRule | None = None) -> ColumnElement[bool]:
    """SQL: the Group row may be given to a user by the request's administrator."""
    rule = rule if rule is not None else current_rule()
    if rule is None:
        return true()
    return Group.id.in_(sorted(rule.group_ids)) if rule.group_ids else false()


def groups_refusal(wanted: set[int], current: set[int]) -> str | None:
    """Why a scoped administrator may not set a user's groups to `wanted` (None: they may):
    they may add the groups of their scope, and keep or remove those the user has."""
    rule = current_rule()
    if rule is None or not (wanted - current - rule.group_ids):
        return None
    return GROUPS_OF_SCOPE.format(label=rule.label)
