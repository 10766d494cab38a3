"""What our SCIM service provider publishes: its configuration, resource types and schemas.

The models come from scim2-models; the published schemas list only the attributes lmsweb
keeps, so a client (or scim2-tester) never expects one to round-trip that would be dropped.
"""

from __future__ import annotations

from typing import Any

from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    EnterpriseUser,
    ETag,
    Filter,
    Group,
    Patch,
    ResourceType,
    Schema,
    ServiceProviderConfig,
    Sort,
    User,
)

UserResource = User[EnterpriseUser]
GroupResource = Group
MAX_RESULTS = 1000

# Attribute (and sub-attribute) names each published schema keeps.
_KEPT: dict[str, dict[str, set[str] | None]] = {
    "urn:ietf:params:scim:schemas:core:2.0:User": {
        "userName": None,
        "name": {"givenName", "familyName"},
        "active": None,
        "emails": {"value"},
        "groups": {"value", "$ref", "display", "type"},
    },
    "urn:ietf:params:scim:schemas:core:2.0:Group": {
        "displayName": None,
        "members": {"value", "$ref", "type"},
    },
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": None},
}


# Every lmsweb user has an email address (how they sign in and get their invitation), and
# is active or archived: neither can be removed, only changed.
_REQUIRED = {"urn:ietf:params:scim:schemas:core:2.0:User": ("emails", "active")}


def _trimmed(schema: Schema, departments: list[str] | None = None) -> Schema:
    kept = _KEPT[schema.id]
    attributes = []
    for attribute in schema.attributes or []:
        if attribute.name not in kept:
            continue
        sub = kept[attribute.name]
        if sub is not None and attribute.sub_attributes:
            attribute.sub_attributes = [a for a in attribute.sub_attributes if a.name in sub]
        if attribute.name in _REQUIRED.get(schema.id, ()):
            attribute.required = True
            for sub_attribute in attribute.sub_attributes or []:
                sub_attribute.required = sub_attribute.name == "value"
        if attribute.name == "department" and departments is not None:
            # A scoped token's users live at its locations: say which, and that one is needed.
            attribute.canonical_values = departments
            attribute.required = True
        attributes.append(attribute)
    schema.attributes = attributes
    return schema


def schemas(departments: list[str] | None = None) -> list[Schema]:
    """The published schemas; `departments` (a scoped token's locations) become the
    enterprise department's canonical values, and the department required."""
    return [_trimmed(model.to_schema(), departments) for model in (User, EnterpriseUser, Group)]


def resource_types(department_required: bool = False) -> list[ResourceType]:
    """User (with the enterprise extension) and Group. A token scoped to locations needs
    the extension on every user (its department places them in scope): it is required."""
    user = ResourceType.from_resource(UserResource)
    if department_required:
        for extension in user.schema_extensions or []:
            extension.required = True
    return [user, ResourceType.from_resource(GroupResource)]


def service_provider_config(documentation: str | None) -> ServiceProviderConfig:
    return ServiceProviderConfig(
        documentation_uri=documentation,
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=False),
        authentication_schemes=[
            AuthenticationScheme(
                type="oauthbearertoken",
                name="Bearer token",
                description="A token an administrator created under Settings, SCIM.",
                primary=True,
            )
        ],
    )


def with_location(obj: Any, location: str) -> Any:
    """Discovery resources carry their own URL in meta.location."""
    from scim2_models import Meta

    name = type(obj).__name__
    obj.meta = Meta(resource_type=name, location=location)
    return obj
