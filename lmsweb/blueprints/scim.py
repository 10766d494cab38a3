"""SCIM 2.0 service provider (RFC 7643/7644) at /scim/v2, for directories that provision.

Authenticated by a bearer token (never the session cookie, so no CSRF token either);
each token's requests are throttled; every change is audited under the token's name.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, current_app, g, request, url_for
from flask_login import AnonymousUserMixin
from pydantic import ValidationError
from scim2_models import (
    Context,
    Error,
    ListResponse,
    PatchOp,
    ResponseParameters,
    SearchRequest,
)
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from werkzeug.exceptions import HTTPException

from .. import scim_provision as provision
from .. import scim_schema, scim_tokens
from ..extensions import csrf, db
from ..models import Group, User
from ..params import MAX_ID
from ..scim_filter import FilterError, to_sql
from ..scim_provision import ScimError
from ..security import bearer

bp = Blueprint("scim", __name__, url_prefix="/scim/v2")
csrf.exempt(bp)

MEDIA_TYPE = "application/scim+json"


def _response(payload: Any, status: int = 200, location: str | None = None):
    response = current_app.response_class(json.dumps(payload), status, mimetype=MEDIA_TYPE)
    if location:
        response.headers["Location"] = location
    return response


def _error(status: int, detail: str, scim_type: str | None = None, headers=None):
    payload = Error(status=status, detail=detail, scim_type=scim_type).model_dump()
    response = _response(payload, status)
    response.headers.update(headers or {})
    return response


def authenticate():
    """The bearer check: a valid, unrevoked token within its request budget."""
    # The session plays no part in SCIM: whoever's cookie comes along, nobody is signed in.
    g._login_user = AnonymousUserMixin()
    token = scim_tokens.bearer_token(request.headers.get("Authorization"))
    row = scim_tokens.find(token) if token else None
    if row is None:
        return _error(
            401,
            "A valid SCIM bearer token is required.",
            headers={"WWW-Authenticate": 'Bearer realm="scim"'},
        )
    if scim_tokens.rate_limited(row):
        return _error(
            429, "Too many requests for this token; slow down.", headers={"Retry-After": "60"}
        )
    scim_tokens.touch(row)
    g.scim_token = row
    return None


@bp.errorhandler(ScimError)
def scim_error(error: ScimError):
    db.session.rollback()
    return _error(error.status, error.detail, error.scim_type)


@bp.errorhandler(IntegrityError)
def conflict(error: IntegrityError):
    """Two clients creating the same person at once: the database's unique index decides."""
    db.session.rollback()
    return _error(409, "That user or group already exists.", "uniqueness")


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException):
    db.session.rollback()
    return _error(error.code or 500, error.description or error.name)


def _payload() -> dict:
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        raise ScimError(400, "The request body must be a JSON object.", "invalidSyntax")
    return data


def _validated(model, data: dict, context: Context):
    try:
        return model.model_validate(data, scim_ctx=context)
    except ValidationError as exc:
        first = exc.errors()[0]
        error = Error.from_validation_error(first)
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ScimError(
            int(error.status or 400),
            f"{where}: {first.get('msg')}" if where else str(first.get("msg")),
            error.scim_type or "invalidValue",
        ) from exc


def _parameters() -> ResponseParameters:
    args = {k: request.args[k] for k in ("attributes", "excludedAttributes") if k in request.args}
    return _validated(ResponseParameters, args, Context.RESOURCE_QUERY_REQUEST)


def _dump(resource, context: Context, parameters: ResponseParameters | None = None) -> dict:
    return resource.model_dump(scim_ctx=context, response_parameters=parameters)


# ------------------------------------------------------------------ discovery


@bp.route("/ServiceProviderConfig")
@bearer(authenticate)
def service_provider_config():
    """What this service provider supports."""
    config = scim_schema.service_provider_config(None)
    scim_schema.with_location(config, url_for("scim.service_provider_config", _external=True))
    return _response(_dump(config, Context.RESOURCE_QUERY_RESPONSE))


def _listed(items: list) -> dict:
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": len(items),
        "startIndex": 1,
        "itemsPerPage": len(items),
        "Resources": items,
    }


def _resource_types() -> list[dict]:
    items = []
    for rt in scim_schema.resource_types(_departments() is not None):
        scim_schema.with_location(rt, url_for("scim.resource_type", name=rt.id, _external=True))
        items.append(_dump(rt, Context.RESOURCE_QUERY_RESPONSE))
    return items


def _departments() -> list[str] | None:
    """A scoped token's locations: the only departments it may give (None: any)."""
    token = scim_tokens.current()
    if token.scope is None or not token.scope.locations:
        return None
    return [location.name for location in token.scope.locations]


def _schemas() -> list[dict]:
    items = []
    for schema in scim_schema.schemas(_departments()):
        scim_schema.with_location(schema, url_for("scim.schema", uri=schema.id, _external=True))
        items.append(_dump(schema, Context.RESOURCE_QUERY_RESPONSE))
    return items


@bp.route("/ResourceTypes")
@bearer(authenticate)
def resource_types():
    """The resource types: User (with the enterprise extension) and Group."""
    return _response(_listed(_resource_types()))


@bp.route("/ResourceTypes/<name>")
@bearer(authenticate)
def resource_type(name: str):
    """One resource type."""
    for item in _resource_types():
        if item["id"] == name:
            return _response(item)
    raise ScimError(404, f"No resource type {name}")


@bp.route("/Schemas")
@bearer(authenticate)
def schemas():
    """The schemas, listing the attributes lmsweb keeps."""
    return _response(_listed(_schemas()))


@bp.route("/Schemas/<uri>")
@bearer(authenticate)
def schema(uri: str):
    """One schema."""
    for item in _schemas():
        if item["id"] == uri:
            return _response(item)
    raise ScimError(404, f"No schema {uri}")


# ------------------------------------------------------------------ lists


def _search(resource: str) -> SearchRequest:
    """The query string's search, or a POSTed SearchRequest (`.../.search`)."""
    if request.method == "POST":
        return _validated(SearchRequest, _payload(), Context.SEARCH_REQUEST)
    names = ("filter", "startIndex", "count", "attributes", "excludedAttributes")
    args = {k: request.args[k] for k in names if k in request.args}
    return _validated(SearchRequest, args, Context.SEARCH_REQUEST)


def _page(search: SearchRequest, query, resource: str):
    if search.filter:
        try:
            query = query.where(to_sql(search.filter.ast, resource))
        except FilterError as exc:
            raise ScimError(400, str(exc), "invalidFilter") from exc
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    most = scim_schema.MAX_RESULTS
    count = most if search.count is None else min(search.count, most)
    # SCIM treats a startIndex below 1 as 1; one past any id finds nothing (and fits SQL).
    start = min(max(search.start_index or 1, 1), MAX_ID)
    rows = []
    if count > 0:
        rows = list(db.session.scalars(query.offset(start - 1).limit(count)))
    return total, start, rows


def _list_response(model, total: int, start: int, resources: list, search: SearchRequest):
    listing = ListResponse[model](
        total_results=total, start_index=start, items_per_page=len(resources), resources=resources
    )
    return _response(_dump(listing, Context.SEARCH_RESPONSE, search))


# ------------------------------------------------------------------ users


@bp.route("/Users", methods=["GET"])
@bp.route("/Users/.search", methods=["POST"])
@bearer(authenticate)
def list_users():
    """Users, filtered and paged."""
    search = _search("User")
    query = provision.visible_users().options(
        selectinload(User.groups), selectinload(User.location)
    )
    total, start, users = _page(search, query.order_by(User.id), "User")
    resources = [provision.user_resource(u) for u in users]
    return _list_response(scim_schema.UserResource, total, start, resources, search)


@bp.route("/Users/<user_id>", methods=["GET"])
@bearer(authenticate)
def get_user(user_id: str):
    """One user."""
    user = provision.load_user(user_id)
    resource = provision.user_resource(user)
    return _response(_dump(resource, Context.RESOURCE_QUERY_RESPONSE, _parameters()))


def _user_answer(user: User, status: int, context: Context):
    db.session.refresh(user)
    resource = provision.user_resource(user)
    return _response(_dump(resource, context, _parameters()), status, resource.meta.location)


@bp.route("/Users", methods=["POST"])
@bearer(authenticate)
def create_user():
    """Provision a user (or bring back one the directory had deleted)."""
    resource = _validated(scim_schema.UserResource, _payload(), Context.RESOURCE_CREATION_REQUEST)
    user, _ = provision.create_user(resource, scim_tokens.current())
    db.session.commit()
    return _user_answer(user, 201, Context.RESOURCE_CREATION_RESPONSE)


@bp.route("/Users/<user_id>", methods=["PUT"])
@bearer(authenticate)
def replace_user(user_id: str):
    """Replace a user's attributes; `active: false` archives them."""
    user = provision.load_user(user_id)
    resource = _validated(
        scim_schema.UserResource, _payload(), Context.RESOURCE_REPLACEMENT_REQUEST
    )
    provision.update_user(user, resource, scim_tokens.current())
    db.session.commit()
    return _user_answer(user, 200, Context.RESOURCE_REPLACEMENT_RESPONSE)


@bp.route("/Users/<user_id>", methods=["PATCH"])
@bearer(authenticate)
def patch_user(user_id: str):
    """Change some of a user's attributes (add, replace, remove)."""
    user = provision.load_user(user_id)
    resource = _patched(
        scim_schema.UserResource, _payload(), provision.user_resource(user, for_patch=True)
    )
    provision.update_user(user, resource, scim_tokens.current())
    db.session.commit()
    return _user_answer(user, 200, Context.RESOURCE_PATCH_RESPONSE)


def _patched(schema, payload: dict, resource):
    """`resource` (a user's or a group's) with the PatchOp `payload` applied to it; a
    malformed or inapplicable patch is a SCIM 4xx naming why."""
    patch = _validated(PatchOp[schema], payload, Context.RESOURCE_PATCH_REQUEST)
    try:
        patch.patch(resource)
    except Exception as exc:  # noqa: BLE001 - scim2-models raises SCIMException subclasses
        status = int(getattr(exc, "status", 400) or 400)
        scim_type = getattr(exc, "scim_type", None) or "invalidValue"
        status = status if 400 <= status < 500 else 400
        raise ScimError(status, str(exc) or type(exc).__name__, scim_type) from exc
    return resource


@bp.route("/Users/<user_id>", methods=["DELETE"])
@bearer(authenticate)
def delete_user(user_id: str):
    """Archive the user (never delete: training records stay); 404 for SCIM afterwards."""
    user = provision.load_user(user_id)
    provision.delete_user(user, scim_tokens.current())
    db.session.commit()
    return current_app.response_class(status=204)


# ------------------------------------------------------------------ groups


def _group_answer(group: Group, status: int, context: Context, with_members: bool = True):
    resource = provision.group_resources([group], with_members)[0]
    return _response(_dump(resource, context, _parameters()), status, resource.meta.location)


def _wants_members(parameters: ResponseParameters) -> bool:
    excluded = {a.lower() for a in parameters.excluded_attributes or []}
    return "members" not in excluded


@bp.route("/Groups", methods=["GET"])
@bp.route("/Groups/.search", methods=["POST"])
@bearer(authenticate)
def list_groups():
    """Groups, filtered and paged."""
    search = _search("Group")
    query = select(Group).where(provision.group_condition()).order_by(Group.id)
    total, start, groups = _page(search, query, "Group")
    resources = provision.group_resources(groups, _wants_members(search))
    return _list_response(scim_schema.GroupResource, total, start, resources, search)


@bp.route("/Groups/<group_id>", methods=["GET"])
@bearer(authenticate)
def get_group(group_id: str):
    """One group with its members."""
    group = provision.load_group(group_id)
    return _group_answer(group, 200, Context.RESOURCE_QUERY_RESPONSE, _wants_members(_parameters()))


@bp.route("/Groups", methods=["POST"])
@bearer(authenticate)
def create_group():
    """Create a group, with members if given."""
    resource = _validated(scim_schema.GroupResource, _payload(), Context.RESOURCE_CREATION_REQUEST)
    group = provision.create_group(resource, scim_tokens.current())
    db.session.commit()
    return _group_answer(group, 201, Context.RESOURCE_CREATION_RESPONSE)


@bp.route("/Groups/<group_id>", methods=["PUT"])
@bearer(authenticate)
def replace_group(group_id: str):
    """Replace a group's name and members."""
    group = provision.load_group(group_id)
    resource = _validated(
        scim_schema.GroupResource, _payload(), Context.RESOURCE_REPLACEMENT_REQUEST
    )
    provision.update_group(group, resource, scim_tokens.current())
    db.session.commit()
    return _group_answer(group, 200, Context.RESOURCE_REPLACEMENT_RESPONSE)


@bp.route("/Groups/<group_id>", methods=["PATCH"])
@bearer(authenticate)
def patch_group(group_id: str):
    """Rename a group, or add and remove members (`members[value eq "…"]` too)."""
    group = provision.load_group(group_id)
    resource = _patched(
        scim_schema.GroupResource,
        provision.normalise_patch(_payload()),
        provision.group_resources([group])[0],
    )
    provision.update_group(group, resource, scim_tokens.current())
    db.session.commit()
    return _group_answer(group, 200, Context.RESOURCE_PATCH_RESPONSE)


@bp.route("/Groups/<group_id>", methods=["DELETE"])
@bearer(authenticate)
def delete_group(group_id: str):
    """Remove the group; its members stay (and keep their training)."""
    group = provision.load_group(group_id)
    provision.delete_group(group, scim_tokens.current())
    db.session.commit()
    return current_app.response_class(status=204)


@bp.route("/.search", methods=["POST"])
@bearer(authenticate)
def search_everything():
    """Searching several resource types at once is not supported (RFC 7644 §3.4.3)."""
    raise ScimError(501, "Search /Users/.search or /Groups/.search instead.")


@bp.route("/<path:rest>")
@bearer(authenticate)
def not_found(rest: str):
    """Anything else under /scim/v2 is a SCIM 404, not the HTML error page."""
    raise ScimError(404, f"There is no SCIM endpoint /{rest}")
