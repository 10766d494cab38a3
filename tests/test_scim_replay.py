"""Replays of the requests Entra ID and Okta send when they provision: create, update,
deactivate, group membership, delete. The bodies follow the providers' published
request shapes (Microsoft's "Develop a SCIM endpoint" tutorial and its validator, Okta's
SCIM 2.0 reference), with their quirks: capitalised ops, `"False"` as a string,
`remove` with a value list, PUT with read-only attributes, passwords we do not keep."""

from __future__ import annotations

import pytest

from lmsweb.models import AuditEvent, Group, User
from tests.conftest import count, get
from tests.scim_support import ENTERPRISE, PATCH, USER_SCHEMA, headers, make_token

GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTRA_USER_NAME = "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1"


@pytest.fixture
def scim(client, app):
    token = make_token(app, "Replay")

    def send(method: str, path: str, body=None, status: int = 200):
        response = client.open(f"/scim/v2{path}", method=method, json=body, headers=headers(token))
        assert response.status_code == status, (method, path, response.text)
        return response.get_json() if response.data else None

    return send


def test_entra_id_provisioning_cycle(app, scim):
    # Entra first looks the user up by its matching attribute...
    found = scim("GET", f'/Users?filter=userName eq "{ENTRA_USER_NAME}"')
    assert found["totalResults"] == 0 and found["Resources"] == []
    # ...then creates them.
    user = scim(
        "POST",
        "/Users",
        {
            "schemas": [USER_SCHEMA, ENTERPRISE],
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "userName": ENTRA_USER_NAME,
            "active": True,
            "emails": [
                {
                    "primary": True,
                    "type": "work",
                    "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com",
                }
            ],
            "meta": {"resourceType": "User"},
            "name": {
                "formatted": "givenName familyName",
                "familyName": "familyName",
                "givenName": "givenName",
            },
            "roles": [],
            ENTERPRISE: {"department": "Sales", "employeeNumber": "701984"},
        },
        status=201,
    )
    user_id = int(user["id"])
    stored = get(app, User, user_id)
    assert stored.email == "test_user_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"
    assert stored.employee_id == "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"
    assert stored.status == "pending" and _location(app, user_id) == "Sales"
    again = scim("GET", f'/Users?filter=userName eq "{ENTRA_USER_NAME}"')
    assert again["Resources"][0]["id"] == user["id"]
    # Attribute updates, in Entra's path forms.
    scim(
        "PATCH",
        f"/Users/{user_id}",
        {
            "schemas": [PATCH],
            "Operations": [
                {
                    "op": "Replace",
                    "path": 'emails[type eq "work"].value',
                    "value": "updatedEmail@microsoft.com",
                },
                {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
                {"op": "Add", "path": f"{ENTERPRISE}:department", "value": "Marketing"},
            ],
        },
    )
    stored = get(app, User, user_id)
    assert (stored.email, stored.last_name) == ("updatedemail@microsoft.com", "updatedFamilyName")
    assert _location(app, user_id) == "Marketing"
    # A group, looked up without members, then membership added and removed.
    assert (
        scim("GET", '/Groups?excludedAttributes=members&filter=displayName eq "Sales EMEA"')[
            "totalResults"
        ]
        == 0
    )
    group = scim(
        "POST",
        "/Groups",
        {
            "schemas": [GROUP_SCHEMA],
            "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
            "displayName": "Sales EMEA",
            "meta": {"resourceType": "Group"},
            "members": [],
        },
        status=201,
    )
    member = {"$ref": None, "value": str(user_id)}
    add = {"schemas": [PATCH], "Operations": [{"op": "Add", "path": "members", "value": [member]}]}
    scim("PATCH", f"/Groups/{group['id']}", add)
    assert [g.name for g in _groups(app, user_id)] == ["Sales EMEA"]
    probe = scim("GET", f'/Groups?filter=id eq "{group["id"]}" and members eq "{user_id}"')
    assert probe["totalResults"] == 1
    remove = {
        "schemas": [PATCH],
        "Operations": [{"op": "Remove", "path": "members", "value": [member]}],
    }
    scim("PATCH", f"/Groups/{group['id']}", remove)
    assert _groups(app, user_id) == []
    # Disable: Entra's older agents send the boolean as a string.
    disabled = scim(
        "PATCH",
        f"/Users/{user_id}",
        {"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]},
    )
    assert disabled["active"] is False and get(app, User, user_id).status == "archived"
    # Hard delete after the soft delete: the user stays, archived, and SCIM forgets them.
    scim("DELETE", f"/Users/{user_id}", status=204)
    scim("GET", f"/Users/{user_id}", status=404)
    assert get(app, User, user_id).status == "archived"
    scim("DELETE", f"/Groups/{group['id']}", status=204)
    assert count(app, Group) == 0
    assert count(app, AuditEvent, AuditEvent.details["scim_token"].as_string() == "Replay") >= 7


def test_okta_provisioning_cycle(app, scim):
    found = scim("GET", '/Users?filter=userName eq "test.user@example.com"&startIndex=1&count=100')
    assert found["totalResults"] == 0
    user = scim(
        "POST",
        "/Users",
        {
            "schemas": [USER_SCHEMA],
            "userName": "test.user@example.com",
            "name": {"givenName": "Test", "familyName": "User"},
            "emails": [{"primary": True, "value": "test.user@example.com", "type": "work"}],
            "displayName": "Test User",
            "locale": "en-US",
            "externalId": "00ujl29u0le5T6Aj10h7",
            "groups": [],
            "password": "1mz050nq",
            "active": True,
        },
        status=201,
    )
    user_id = int(user["id"])
    assert "password" not in user
    assert get(app, User, user_id).password_hash is None
    # Profile updates come as a PUT of the whole user, read-only attributes included.
    replaced = scim(
        "PUT",
        f"/Users/{user_id}",
        {
            "schemas": [USER_SCHEMA],
            "id": user["id"],
            "userName": "test.user@example.com",
            "name": {"givenName": "Tess", "familyName": "User"},
            "emails": [{"primary": True, "value": "test.user@example.com", "type": "work"}],
            "active": True,
            "groups": [],
            "meta": {"resourceType": "User"},
        },
    )
    assert replaced["name"]["givenName"] == "Tess"
    assert get(app, User, user_id).first_name == "Tess"
    # Group push: create, rename, add and remove members.
    group = scim(
        "POST",
        "/Groups",
        {"schemas": [GROUP_SCHEMA], "displayName": "Test SCIMv2", "members": []},
        status=201,
    )
    gid = group["id"]
    scim(
        "PATCH",
        f"/Groups/{gid}",
        {
            "schemas": [PATCH],
            "Operations": [{"op": "replace", "value": {"id": gid, "displayName": "Okta Pushed"}}],
        },
    )
    assert get(app, Group, int(gid)).name == "Okta Pushed"
    scim(
        "PATCH",
        f"/Groups/{gid}",
        {
            "schemas": [PATCH],
            "Operations": [
                {
                    "op": "add",
                    "path": "members",
                    "value": [{"value": user["id"], "display": "test.user@example.com"}],
                }
            ],
        },
    )
    assert [g.name for g in _groups(app, user_id)] == ["Okta Pushed"]
    scim(
        "PATCH",
        f"/Groups/{gid}",
        {
            "schemas": [PATCH],
            "Operations": [{"op": "remove", "path": f'members[value eq "{user_id}"]'}],
        },
    )
    assert _groups(app, user_id) == []
    # Deactivate, then reactivate.
    deactivate = {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]}
    assert scim("PATCH", f"/Users/{user_id}", deactivate)["active"] is False
    assert get(app, User, user_id).status == "archived"
    reactivate = {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": True}}]}
    assert scim("PATCH", f"/Users/{user_id}", reactivate)["active"] is True
    assert get(app, User, user_id).status == "active"
    scim("DELETE", f"/Groups/{gid}", status=204)


def _groups(app, user_id):
    from lmsweb.extensions import db

    with app.app_context():
        return list(db.session.get(User, user_id).groups)


def _location(app, user_id):
    from lmsweb.extensions import db

    with app.app_context():
        return db.session.get(User, user_id).location.name
