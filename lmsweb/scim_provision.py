"""SCIM provisioning: directory resources in, lmsweb users and groups out, and back.

Every change goes through the same domain functions the administrators' pages use
(lifecycle.approve/archive/restore/set_groups, notifications.queue_invitation) and is
audited under the SCIM token's name, in the same transaction. Users are never deleted:
a SCIM DELETE archives the user and hides them from SCIM (404 from then on, as RFC 7644
§3.6 asks); a later POST of the same person restores them with their training history.

A token with a scope (lmsweb/scope.py) sees only the users it reaches and only its scope's
groups; anything else is absent (404, never counted). It may not put a user outside its
scope (403, nothing written), and adds to its groups only users it already reaches. A group
it creates joins its scope, so it keeps what it provisions.
"""

from __future__ import annotations

from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask import current_app, url_for
from scim2_models import (
    Email,
    EnterpriseUser,
    GroupMember,
    GroupMembership,
    Meta,
    Name,
)
from sqlalchemy import false, func, select, true
from sqlalchemy.orm import selectinload

from . import audit, enrolment, lifecycle, notifications, scope
from .domain_error import DomainError
from .extensions import db
from .models import Group, Location, ScimToken, User, scope_groups, user_groups, utcnow
from .params import parse_int
from .scim_schema import GroupResource, UserResource


class ScimError(Exception):
    """Answered as a SCIM Error message with this status (and scimType, if any)."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type


def after_join(user: User) -> None:
    """A user arrived from the directory or their groups changed (SCIM or OIDC).

    The one place that reacts to who is in which group: enrolment rules hook in here.
    """
    enrolment.user_joined(user)


# ---------------------------------------------------------------- users: out


def visible_users():
    """What SCIM sees: every user the token reaches but those a SCIM client deleted (and
    nobody restored)."""
    return select(User).where(
        ~((User.scim_deleted_at.is_not(None)) & (User.status == "archived")),
        scope.user_condition(),
    )


def group_condition():
    """SQL: the group is one the token may see (a scoped token: its scope's groups)."""
    rule = scope.current_rule()
    if rule is None:
        return true()
    return Group.id.in_(sorted(rule.group_ids)) if rule.group_ids else false()


def _sees_group(group_id: int) -> bool:
    rule = scope.current_rule()
    return rule is None or group_id in rule.group_ids


def user_location(user: User) -> str:
    return url_for("scim.get_user", user_id=user.id, _external=True)


def group_location(group: Group) -> str:
    return url_for("scim.get_group", group_id=group.id, _external=True)


def user_resource(user: User, *, for_patch: bool = False) -> UserResource:
    """The user as SCIM shows them; `for_patch` also gives the email its type and primary
    flag, so that a PATCH path such as Entra's `emails[type eq "work"].value` finds it."""
    email = (
        Email(value=user.email, type="work", primary=True) if for_patch else Email(value=user.email)
    )
    resource = UserResource(
        id=str(user.id),
        user_name=user.scim_user_name or user.email,
        external_id=user.employee_id,
        name=Name(given_name=user.first_name or None, family_name=user.last_name or None)
        if user.first_name or user.last_name
        else None,
        emails=[email],
        active=user.status != "archived",
        groups=[
            GroupMembership(value=str(g.id), display=g.name, ref=group_location(g), type="direct")
            for g in user.groups
            if _sees_group(g.id)
        ]
        or None,
        meta=Meta(
            resource_type="User",
            created=user.created_at,
            last_modified=user.archived_at or user.approved_at or user.created_at,
            location=user_location(user),
        ),
    )
    if user.location is not None:
        # employeeNumber is read as the User ID when there is no externalId, but only
        # externalId carries it back: one value, one attribute.
        resource[EnterpriseUser] = EnterpriseUser(department=user.location.name)
    return resource


def normalise_patch(data: dict) -> dict:
    """Entra ID removes members as `{"op": "Remove", "path": "members", "value": [...]}`,
    which RFC 7644 §3.5.2.2 spells `members[value eq "..."]`: rewrite it that way."""
    operations = data.get("Operations")
    if not isinstance(operations, list):
        return data
    rewritten = []
    for operation in operations:
        if (
            isinstance(operation, dict)
            and str(operation.get("op", "")).lower() == "remove"
            and str(operation.get("path", "")).lower() == "members"
            and isinstance(operation.get("value"), list)
        ):
            for member in operation["value"]:
                value = member.get("value") if isinstance(member, dict) else None
                if not isinstance(value, str) or parse_int(value) is None:
                    raise ScimError(400, f"No user {value}.", "invalidValue")
                rewritten.append({"op": "remove", "path": f'members[value eq "{value}"]'})
        else:
            rewritten.append(operation)
    return {**data, "Operations": rewritten}


def load_user(user_id: str) -> User:
    user = None
    if (number := parse_int(user_id)) is not None:
        user = db.session.scalar(
            visible_users()
            .where(User.id == number)
            .options(selectinload(User.groups), selectinload(User.location))
        )
    if user is None:
        raise ScimError(404, f"User {user_id} not found")
    return user


# ---------------------------------------------------------------- users: in


def _email(resource: UserResource) -> str:
    emails = [e for e in resource.emails or [] if e.value]
    chosen = (
        next((e for e in emails if e.primary), None)
        or next((e for e in emails if (e.type or "").lower() == "work"), None)
        or (emails[0] if emails else None)
    )
    raw = chosen.value if chosen else resource.user_name
    try:
        return validate_email(str(raw or ""), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ScimError(
            400, f"The user needs an email address in emails or userName: {exc}", "invalidValue"
        ) from exc


def _names(resource: UserResource, email: str, creating: bool) -> tuple[str, str]:
    """The given and family names; a new user without them is named from displayName or
    the email (a later change that removes the names removes them)."""
    name = resource.name
    first = (name.given_name if name else None) or ""
    last = (name.family_name if name else None) or ""
    if creating and not first and not last:
        display = (resource.display_name or (name.formatted if name else None) or "").strip()
        if display:
            first, _, last = display.rpartition(" ") if " " in display else (display, "", "")
        else:
            local = email.split("@", 1)[0]
            first, _, last = local.replace("_", ".").partition(".")
            first, last = first.title(), last.replace(".", " ").title()
    first, last = first.strip(), last.strip()
    if len(first) > 100 or len(last) > 100:
        raise ScimError(400, "Names are at most 100 characters long.", "invalidValue")
    return first, last


def _enterprise(resource: UserResource) -> EnterpriseUser | None:
    try:
        return resource[EnterpriseUser]
    except KeyError:
        return None


def _unique(user: User | None, email: str, user_name: str, employee_id: str | None) -> None:
    others = select(User.id)
    if user is not None:
        others = others.where(User.id != user.id)
    if db.session.scalar(others.where(func.lower(User.email) == email)) is not None:
        raise ScimError(409, f"Another user already has the email {email}.", "uniqueness")
    key = func.lower(func.coalesce(User.scim_user_name, User.email))
    if db.session.scalar(others.where(key == user_name.lower())) is not None:
        raise ScimError(409, f"Another user already has the userName {user_name}.", "uniqueness")
    if employee_id and (
        db.session.scalar(others.where(User.employee_id == employee_id)) is not None
    ):
        raise ScimError(409, f"Another user already has the ID {employee_id}.", "uniqueness")


def _location(name: str | None) -> Location | None:
    name = " ".join((name or "").split())
    if not name:
        return None
    if len(name) > 120:
        raise ScimError(400, "A department name is at most 120 characters.", "invalidValue")
    location = db.session.scalar(select(Location).where(func.lower(Location.name) == name.lower()))
    if location is None:
        location = Location(name=name)
        db.session.add(location)
        db.session.flush()
    return location


def _audited(user: User) -> dict[str, Any]:
    return {
        "email": user.email,
        "user_name": user.scim_user_name or user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "user_id": user.employee_id,
        "location": user.location.name if user.location else None,
        "status": user.status,
    }


def _write(user: User, resource: UserResource) -> None:
    """Set the user's fields from a whole resource (create and replace)."""
    if not resource.user_name or not resource.user_name.strip():
        raise ScimError(400, "userName is required.", "invalidValue")
    user_name = resource.user_name.strip()
    if len(user_name) > 254:
        raise ScimError(400, "userName is at most 254 characters.", "invalidValue")
    email = _email(resource)
    first, last = _names(resource, email, creating=user.id is None)
    enterprise = _enterprise(resource)
    number = enterprise.employee_number if enterprise else None
    employee_id = (resource.external_id or number or "").strip() or None
    if employee_id and len(employee_id) > 64:
        raise ScimError(400, "externalId is at most 64 characters.", "invalidValue")
    _unique(user if user.id else None, email, user_name, employee_id)
    user.email = email
    user.scim_user_name = None if user_name.lower() == email else user_name
    user.first_name, user.last_name = first, last
    user.employee_id = employee_id
    location = _location(enterprise.department if enterprise else None)
    user.location = location
    user.location_id = location.id if location else None
    _refuse_outside_scope(user)


def _refuse_outside_scope(user: User) -> None:
    """A scoped token may not put a user where it could no longer see them (the caller's
    transaction is rolled back by the 403, so nothing is written)."""
    rule = scope.current_rule()
    if rule is None or scope.reaches(user, rule):
        return
    if rule.location_ids:
        where = "the department (enterprise extension) must be one of its locations"
        if rule.group_ids:
            where += ", or the user already in one of its groups"
    else:
        where = "the user must already be in one of its groups"
    raise ScimError(
        403,
        f"This token reaches only {rule.label}: {where}. Nothing was changed.",
    )


def _archive(user: User) -> None:
    """Archive as the Users page does; never the last active administrator (the directory
    would lock the organisation out of lmsweb)."""
    if user.role == "admin" and user.status != "archived":
        others = db.session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.role == "admin", User.status == "active", User.id != user.id)
        )
        if not others:
            raise ScimError(
                409, f"{user.email} is the last administrator and stays active.", "mutability"
            )
    try:
        lifecycle.archive(user, "user")
    except DomainError as error:
        raise ScimError(409, error.message) from error


def _set_active(user: User, active: bool | None, token: ScimToken) -> str | None:
    """Archive or restore as `active` says; returns the audit action taken, if any."""
    if active is False and user.status != "archived":
        _archive(user)
        return "user.archive"
    if active is True and user.status == "archived":
        lifecycle.restore(user)
        user.scim_deleted_at = None
        return "user.restore"
    return None


def _record(action: str, user_or_group: Any, token: ScimToken, summary: str, **details) -> None:
    audit.record(
        action,
        target=user_or_group,
        actor=None,
        summary=f"SCIM “{token.name}”: {summary}",
        details={"scim_token": token.name, **details},
    )


def _previously_deleted(resource: UserResource) -> User | None:
    """The archived user a SCIM client deleted whose userName or email comes back."""
    email = _email(resource)
    key = func.lower(func.coalesce(User.scim_user_name, User.email))
    return db.session.scalar(
        select(User).where(
            User.scim_deleted_at.is_not(None),
            User.status == "archived",
            (key == (resource.user_name or "").strip().lower()) | (func.lower(User.email) == email),
        )
    )


def create_user(resource: UserResource, token: ScimToken) -> tuple[User, bool]:
    """POST /Users: a new user, or a deleted one restored; returns (user, restored)."""
    returning = _previously_deleted(resource)
    if returning is not None and not scope.reaches(returning):
        # Someone this token does not reach: not its to bring back (nor to learn about).
        raise ScimError(409, "That user already exists.", "uniqueness")
    if returning is not None:
        _write(returning, resource)
        lifecycle.restore(returning)
        returning.scim_deleted_at = None
        _record("user.restore", returning, token, f"restored {returning.email}")
        _set_active(returning, resource.active, token)
        after_join(returning)
        return returning, True
    user = User(role="learner", status="pending", created_at=utcnow())
    _write(user, resource)
    db.session.add(user)
    db.session.flush()
    details = _audited(user)
    approve = current_app.config.get("SCIM_APPROVE_USERS") and resource.active is not False
    if approve:
        # As the Users page's "Approve and send the invitation now".
        lifecycle.approve(user)
        notifications.queue_invitation(user)
        details["approved_and_notified"] = True
    _record("user.create", user, token, f"added {user.email}", **details)
    if resource.active is False:
        _set_active(user, False, token)
        _record("user.archive", user, token, f"archived {user.email} (inactive in the directory)")
    after_join(user)
    return user, False


def update_user(user: User, resource: UserResource, token: ScimToken) -> None:
    """PUT (or a PATCH already applied to the resource): write every field, then `active`."""
    before = _audited(user)
    _write(user, resource)
    db.session.flush()
    after = _audited(user)
    changed = {k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]}
    if changed:
        _record("user.update", user, token, f"updated {user.email}", **changed)
    action = _set_active(user, resource.active, token)
    if action == "user.archive":
        _record(action, user, token, f"archived {user.email} (deactivated in the directory)")
    elif action == "user.restore":
        _record(action, user, token, f"restored {user.email} (reactivated in the directory)")


def delete_user(user: User, token: ScimToken) -> None:
    """DELETE: archive (training records stay) and hide from SCIM; never a row deleted."""
    if user.status != "archived":
        _archive(user)
    user.scim_deleted_at = utcnow()
    _record("user.archive", user, token, f"archived {user.email} (deleted in the directory)")


# ---------------------------------------------------------------- groups


def _members(group_ids: list[int]) -> dict[int, list[User]]:
    rows = db.session.execute(
        select(user_groups.c.group_id, User)
        .join(User, User.id == user_groups.c.user_id)
        .where(user_groups.c.group_id.in_(group_ids), scope.user_condition())
        .order_by(User.id)
    ).all()
    members: dict[int, list[User]] = {gid: [] for gid in group_ids}
    for group_id, user in rows:
        members[group_id].append(user)
    return members


def group_resources(groups: list[Group], with_members: bool = True) -> list[GroupResource]:
    members = _members([g.id for g in groups]) if with_members and groups else {}
    return [
        GroupResource(
            id=str(group.id),
            external_id=group.scim_external_id,
            display_name=group.name,
            members=[
                GroupMember(value=str(u.id), ref=user_location(u), type="User")
                for u in members.get(group.id, [])
            ]
            or None,
            meta=Meta(
                resource_type="Group",
                created=group.created_at,
                last_modified=group.created_at,
                location=group_location(group),
            ),
        )
        for group in groups
    ]


def load_group(group_id: str) -> Group:
    number = parse_int(group_id)
    group = db.session.get(Group, number) if number is not None else None
    if group is None or not _sees_group(group.id):
        raise ScimError(404, f"Group {group_id} not found")
    return group


def _group_name(resource: GroupResource, group: Group | None) -> str:
    name = " ".join((resource.display_name or "").split())
    if not name:
        raise ScimError(400, "displayName is required.", "invalidValue")
    if len(name) > 120:
        raise ScimError(400, "displayName is at most 120 characters.", "invalidValue")
    other = select(Group.id).where(func.lower(Group.name) == name.lower())
    if group is not None and group.id:
        other = other.where(Group.id != group.id)
    if db.session.scalar(other) is not None:
        raise ScimError(409, f"A group named {name} already exists.", "uniqueness")
    return name


def _external_id(resource: GroupResource) -> str | None:
    value = (resource.external_id or "").strip() or None
    if value and len(value) > 255:
        raise ScimError(400, "externalId is at most 255 characters.", "invalidValue")
    return value


def _member_ids(resource: GroupResource) -> set[int]:
    ids = set()
    for member in resource.members or []:
        if (member.type or "User") != "User":
            raise ScimError(400, "Only users can be group members.", "invalidValue")
        value = str(member.value or "")
        number = parse_int(value)
        if number is None:
            raise ScimError(400, f"No user {value}.", "invalidValue")
        ids.add(number)
    return ids


def set_members(group: Group, wanted: set[int], token: ScimToken) -> None:
    """Make `wanted` the group's members, through each changed user's own group list."""
    current = set(
        db.session.scalars(select(user_groups.c.user_id).where(user_groups.c.group_id == group.id))
    )
    changed = wanted ^ current
    if not changed:
        return
    users = {
        u.id: u
        for u in db.session.scalars(
            visible_users().where(User.id.in_(changed)).options(selectinload(User.groups))
        )
    }
    missing = sorted((wanted - current) - set(users))
    if missing:
        raise ScimError(400, f"No user {missing[0]}.", "invalidValue")
    added, removed = [], []
    for user_id in sorted(changed):
        user = users.get(user_id)
        if user is None:  # a member SCIM no longer sees: leave them as they are
            continue
        if user_id in wanted:
            lifecycle.set_groups(user, [*user.groups, group])
            added.append(user.email)
        else:
            lifecycle.set_groups(user, [g for g in user.groups if g.id != group.id])
            removed.append(user.email)
        after_join(user)
    _record(
        "group.members",
        group,
        token,
        f"group {group.name}: {len(added)} added, {len(removed)} removed",
        added=added,
        removed=removed,
    )


def create_group(resource: GroupResource, token: ScimToken) -> Group:
    group = Group(
        name=_group_name(resource, None),
        scim_external_id=_external_id(resource),
        created_at=utcnow(),
    )
    db.session.add(group)
    db.session.flush()
    if token.scope is None:
        _record("group.create", group, token, f"added group {group.name}")
    else:
        # The token keeps what it creates; its reach does not grow (members must be users
        # it reaches already).
        token.scope.groups.append(group)
        db.session.flush()
        scope.forget_current_rule()
        _record(
            "group.create",
            group,
            token,
            f"added group {group.name} (joins the token's scope)",
            joined_scope=True,
        )
    set_members(group, _member_ids(resource), token)
    return group


def update_group(group: Group, resource: GroupResource, token: ScimToken) -> None:
    name = _group_name(resource, group)
    if name != group.name:
        _record("group.rename", group, token, f"renamed group {group.name} to {name}")
        group.name = name
    group.scim_external_id = _external_id(resource)
    set_members(group, _member_ids(resource), token)


def delete_group(group: Group, token: ScimToken) -> None:
    """Members leave the group (their training stays), then the group goes. A group that
    scopes an administrator or another token stays (removing it would change who they
    reach); a scoped token's own group leaves its scope with it."""
    scopes = set(
        db.session.scalars(
            select(scope_groups.c.scope_id).where(scope_groups.c.group_id == group.id)
        )
    )
    scopes.discard(token.scope_id)
    if scopes:
        raise ScimError(
            409,
            f"Group {group.name} defines an administrator's or another token's scope; "
            "change that scope first.",
            "mutability",
        )
    set_members(group, set(), token)
    if token.scope_id is not None:
        db.session.execute(
            scope_groups.delete().where(
                scope_groups.c.group_id == group.id, scope_groups.c.scope_id == token.scope_id
            )
        )
        db.session.expire(token.scope, ["groups"])
    _record("group.remove", group, token, f"removed group {group.name}")
    # Members SCIM no longer sees (deleted, so archived) leave with the group too.
    db.session.execute(user_groups.delete().where(user_groups.c.group_id == group.id))
    db.session.flush()
    db.session.delete(group)
