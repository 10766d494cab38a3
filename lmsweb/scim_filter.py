"""SCIM filters (RFC 7644 §3.4.2.2) as SQL: scim2-models parses, this maps the tree to columns.

Supported: eq, ne, co, sw, ew, pr (and gt/ge/lt/le on dates), joined with and, or, not,
on the attributes listed in USER_ATTRIBUTES and GROUP_ATTRIBUTES; `emails[value eq ...]`
style value paths too. Anything else is an `invalidFilter` error, never a silent match-all.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from scim2_models.path.expressions import (
    CompareOperator,
    Comparison,
    FilterNode,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
    ValuePath,
)
from sqlalchemy import (
    ColumnElement,
    and_,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)

from .models import Group, Location, User, user_groups
from .params import parse_int
from .scope import current_rule

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


class FilterError(ValueError):
    """The filter names something we cannot filter on; answered 400 invalidFilter."""


def _text(column, *, case_exact: bool = False):
    return column if case_exact else func.lower(column)


def _display_name():
    return func.trim(User.first_name + " " + User.last_name)


def _location_name():
    return select(Location.name).where(Location.id == User.location_id).scalar_subquery()


def _user_in_group(op: CompareOperator, value: Any) -> ColumnElement[bool]:
    group_id = parse_int(str(value))
    if op != CompareOperator.eq or group_id is None:
        raise FilterError("groups can only be filtered with eq and a group id")
    rule = current_rule()
    if rule is not None and group_id not in rule.group_ids:
        return false()  # a group outside the token's scope: not one it may ask about
    return exists().where(user_groups.c.user_id == User.id, user_groups.c.group_id == group_id)


def _in_some_group() -> ColumnElement[bool]:
    """`groups pr`: in any group the request may see (a scoped token: its scope's)."""
    rule = current_rule()
    condition = exists().where(user_groups.c.user_id == User.id)
    if rule is not None:
        condition = condition.where(user_groups.c.group_id.in_(sorted(rule.group_ids)))
    return condition


# attribute name (lower case, `attr.sub`) -> (expression, case exact?)
USER_ATTRIBUTES: dict[str, tuple[Callable[[], Any], bool]] = {
    "id": (lambda: User.id, True),
    "username": (lambda: func.coalesce(User.scim_user_name, User.email), False),
    "emails": (lambda: User.email, False),
    "emails.value": (lambda: User.email, False),
    # Each user has one email, the primary work address.
    "emails.type": (lambda: literal("work"), False),
    "externalid": (lambda: User.employee_id, True),
    "displayname": (_display_name, False),
    "name.givenname": (lambda: User.first_name, False),
    "name.familyname": (lambda: User.last_name, False),
    "name.formatted": (_display_name, False),
    "employeenumber": (lambda: User.employee_id, True),
    "department": (_location_name, False),
    "meta.created": (lambda: User.created_at, True),
}

GROUP_ATTRIBUTES: dict[str, tuple[Callable[[], Any], bool]] = {
    "id": (lambda: Group.id, True),
    "displayname": (lambda: Group.name, False),
    "externalid": (lambda: Group.scim_external_id, True),
    "meta.created": (lambda: Group.created_at, True),
}


def _key(node_path, prefix: str | None = None) -> str:
    name = node_path.attr if prefix is None else f"{prefix}.{node_path.attr}"
    if node_path.sub_attr:
        name = f"{name}.{node_path.sub_attr}"
    return name.lower()


def _like(value: str, kind: str) -> str:
    escaped = value.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return {"co": f"%{escaped}%", "sw": f"{escaped}%", "ew": f"%{escaped}"}[kind]


class _Translator:
    def __init__(self, resource: str):
        self.resource = resource
        self.attributes = USER_ATTRIBUTES if resource == "User" else GROUP_ATTRIBUTES
        self.core = CORE_USER if resource == "User" else CORE_GROUP

    def __call__(self, node: FilterNode, prefix: str | None = None) -> ColumnElement[bool]:
        if isinstance(node, LogicalExpr):
            terms = [self(term, prefix) for term in node.terms]
            return and_(*terms) if node.op == LogicalOperator.and_ else or_(*terms)
        if isinstance(node, Not):
            return not_(self(node.expr, prefix))
        if isinstance(node, ValuePath):
            if node.sub_attr:
                raise FilterError("a value path in a filter cannot name a sub-attribute")
            return self(node.val_filter, prefix=_key(node.attr_path))
        if isinstance(node, Present):
            return self._present(node)
        if isinstance(node, Comparison):
            return self._compare(node, prefix)
        raise FilterError(f"unsupported filter expression {node}")

    def _lookup(self, attr_path, prefix: str | None):
        uri = (attr_path.uri or "").lower()
        if uri and uri not in (self.core.lower(), ENTERPRISE.lower()):
            raise FilterError(f"unknown schema {attr_path.uri}")
        if uri == ENTERPRISE.lower() and self.resource != "User":
            raise FilterError(f"unknown schema {attr_path.uri}")
        key = _key(attr_path, prefix)
        if key in ("active", "emails.primary") and self.resource == "User":
            return key, None, True
        if key in ("groups", "groups.value", "members", "members.value"):
            return key.split(".")[0], None, True
        if key not in self.attributes:
            raise FilterError(f"cannot filter on {attr_path}")
        build, case_exact = self.attributes[key]
        return key, build(), case_exact

    def _present(self, node: Present) -> ColumnElement[bool]:
        key, column, _ = self._lookup(node.attr_path, None)
        if key in ("active", "emails.primary"):
            return true()
        if key == "groups":
            return _in_some_group()
        if key == "members":
            return exists().where(user_groups.c.group_id == Group.id)
        return and_(column.is_not(None), column != "")

    def _compare(self, node: Comparison, prefix: str | None) -> ColumnElement[bool]:
        key, column, case_exact = self._lookup(node.attr_path, prefix)
        op, value = node.op, node.value
        if key == "active":
            if op not in (CompareOperator.eq, CompareOperator.ne) or not isinstance(value, bool):
                raise FilterError("active is compared with eq or ne and true or false")
            archived = User.status == "archived"
            wants_active = value if op == CompareOperator.eq else not value
            return not_(archived) if wants_active else archived
        if key == "emails.primary":
            if op != CompareOperator.eq or not isinstance(value, bool):
                raise FilterError("emails.primary is compared with eq and true or false")
            return true() if value else false()
        if key == "groups":
            return _user_in_group(op, value)
        if key == "members":
            user_id = parse_int(str(value))
            if op != CompareOperator.eq or user_id is None:
                raise FilterError("members can only be filtered with eq and a user id")
            return exists().where(
                user_groups.c.group_id == Group.id, user_groups.c.user_id == user_id
            )
        if key in ("id",):
            if op not in (CompareOperator.eq, CompareOperator.ne):
                raise FilterError("id is compared with eq or ne")
            number = parse_int(str(value))
            if number is None:
                return false() if op == CompareOperator.eq else true()
            return column == number if op == CompareOperator.eq else column != number
        if key == "meta.created":
            return self._dates(column, op, value)
        if value is None:
            return column.is_(None) if op == CompareOperator.eq else column.is_not(None)
        if not isinstance(value, str):
            raise FilterError(f"{node.attr_path} is compared with a string")
        target = _text(column, case_exact=case_exact)
        needle = value if case_exact else value.lower()
        if op == CompareOperator.eq:
            return target == needle
        if op == CompareOperator.ne:
            return or_(target != needle, column.is_(None))
        if op.value in ("co", "sw", "ew"):
            pattern = _like(value, op.value)
            return func.lower(column).like(pattern, escape="\\")
        raise FilterError(f"{op.value} is not supported on {node.attr_path}")

    def _dates(self, column, op: CompareOperator, value: Any) -> ColumnElement[bool]:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError as exc:
            raise FilterError("meta.created is compared with a date and time") from exc
        moment = moment.replace(tzinfo=None)
        compare = {
            "eq": column == moment,
            "gt": column > moment,
            "ge": column >= moment,
            "lt": column < moment,
            "le": column <= moment,
        }
        if op.value not in compare:
            raise FilterError(f"{op.value} is not supported on meta.created")
        return compare[op.value]


def to_sql(node: FilterNode, resource: str) -> ColumnElement[bool]:
    """The WHERE clause for a parsed filter on "User" or "Group"."""
    return _Translator(resource)(node)
