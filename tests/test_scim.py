"""SCIM 2.0 provisioning through the HTTP API: tokens, users, groups, filters, archive."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lmsweb.extensions import db
from lmsweb.models import (
    AuditEvent,
    CourseAssignment,
    Group,
    OutboundEmail,
    ScimToken,
    User,
)
from tests.conftest import count, csrf_from, get
from tests.scim_support import ENTERPRISE, PATCH, USER_SCHEMA, headers, make_token

GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"


@pytest.fixture
def token(app):
    return make_token(app, "Entra ID")


@pytest.fixture
def scim(client, token):
    """Send SCIM requests with the bearer token."""

    def send(method: str, path: str, body=None, **kw):
        return client.open(
            f"/scim/v2{path}", method=method, json=body, headers=headers(token), **kw
        )

    return send


def new_user(scim, email="jo.bloggs@example.com", **extra):
    body = {
        "schemas": [USER_SCHEMA],
        "userName": email,
        "name": {"givenName": "Jo", "familyName": "Bloggs"},
        "emails": [{"value": email, "type": "work", "primary": True}],
        "active": True,
        **extra,
    }
    response = scim("POST", "/Users", body)
    assert response.status_code == 201, response.text
    return response.get_json()


def test_cli_prints_the_token_once_as_last_line_and_stores_only_a_hash(app, runner, client):
    result = runner.invoke(args=["lms", "scim-token", "create", "--name", "Okta"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    with app.app_context():
        row = db.session.scalar(select(ScimToken).where(ScimToken.name == "Okta"))
        assert token not in (row.token_hash, row.prefix) and row.last_used_at is None
    response = client.get("/scim/v2/Users", headers=headers(token))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/scim+json")
    assert get(app, ScimToken, row.id).last_used_at is not None
    again = runner.invoke(args=["lms", "scim-token", "create", "--name", "Okta"])
    assert again.exit_code != 0 and "already exists" in again.output


def test_revoked_or_unknown_tokens_are_refused(app, runner, client, token):
    assert client.get("/scim/v2/Users", headers=headers(token + "x")).status_code == 401
    assert runner.invoke(args=["lms", "scim-token", "revoke", "--name", "Entra ID"]).exit_code == 0
    response = client.get("/scim/v2/Users", headers=headers(token))
    assert response.status_code == 401
    assert response.get_json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]


def test_settings_page_creates_shows_once_and_revokes(app, admin_client, learner_client):
    assert learner_client.get("/admin/settings/scim").status_code == 403
    page = admin_client.get("/admin/settings/scim")
    assert page.status_code == 200 and "/scim/v2" in page.text
    assert (
        admin_client.get("/admin/settings/scim", headers={"HX-Request": "true"})
        .text.lstrip()
        .startswith('<div id="scim-settings"')
    )
    created = admin_client.post("/admin/settings/scim/tokens", data={"name": "Google"})
    assert created.status_code == 201
    token = created.text.split('id="new-token-value" value="')[1].split('"')[0]
    assert token.startswith("lms_scim_")
    assert token not in admin_client.get("/admin/settings/scim").text
    client = app.test_client()
    assert client.get("/scim/v2/Groups", headers=headers(token)).status_code == 200
    with app.app_context():
        row = db.session.scalar(select(ScimToken).where(ScimToken.name == "Google"))
    assert admin_client.post("/admin/settings/scim/tokens", data={"name": ""}).status_code == 422
    revoked = admin_client.post(f"/admin/settings/scim/tokens/{row.id}/revoke")
    assert revoked.status_code == 303
    assert client.get("/scim/v2/Groups", headers=headers(token)).status_code == 401
    csrf_from(admin_client.get("/admin/settings/scim").text)


def test_a_provisioned_user_is_pending_without_email_and_audited_under_the_token(app, scim):
    body = new_user(scim)
    user = get(app, User, int(body["id"]))
    assert (user.email, user.first_name, user.last_name, user.status) == (
        "jo.bloggs@example.com",
        "Jo",
        "Bloggs",
        "pending",
    )
    assert body["active"] is True and body["meta"]["location"].endswith(f"/Users/{user.id}")
    assert count(app, OutboundEmail) == 0
    with app.app_context():
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "user.create"))
        assert event.details["scim_token"] == "Entra ID" and "Entra ID" in event.summary


@pytest.mark.parametrize("app_config", [{"SCIM_APPROVE_USERS": True}])
def test_with_the_setting_a_provisioned_user_is_approved_and_invited(app, scim):
    body = new_user(scim)
    assert get(app, User, int(body["id"])).status == "active"
    with app.app_context():
        mail = db.session.scalar(select(OutboundEmail))
        assert mail.kind == "invitation" and mail.recipient == "jo.bloggs@example.com"
        assert mail.status == "queued" and "/activate/" in mail.body_text


def test_user_id_department_and_username_distinct_from_email(app, scim):
    body = new_user(
        scim,
        email="sam@example.com",
        userName="sam@corp.onmicrosoft.com",
        externalId="00123",
        schemas=[USER_SCHEMA, ENTERPRISE],
        **{ENTERPRISE: {"department": "Finance"}},
    )
    user = get(app, User, int(body["id"]))
    assert (user.employee_id, user.email, user.scim_user_name) == (
        "00123",
        "sam@example.com",
        "sam@corp.onmicrosoft.com",
    )
    assert body["userName"] == "sam@corp.onmicrosoft.com" and body[ENTERPRISE] == {
        "department": "Finance"
    }
    other = scim(
        "POST",
        "/Users",
        {"schemas": [USER_SCHEMA], "userName": "x@example.com", "externalId": "00123"},
    )
    assert other.status_code == 409 and other.get_json()["scimType"] == "uniqueness"
    assert count(app, User) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"schemas": [USER_SCHEMA], "userName": "not-an-email"},
        {"schemas": [USER_SCHEMA]},
        {"schemas": [USER_SCHEMA], "userName": "a@example.com", "active": "perhaps"},
        ["not", "an", "object"],
    ],
)
def test_bad_input_is_a_400_and_changes_nothing(app, scim, body):
    response = scim("POST", "/Users", body)
    assert response.status_code == 400, response.text
    assert response.get_json()["status"] == "400"
    assert count(app, User) == 0


def test_filters_and_paging(app, scim, make):
    make.user(email="pre.existing@example.com", first_name="Pre", last_name="Existing")
    for n in range(5):
        new_user(scim, email=f"user{n}@acme.example.com", externalId=f"E{n}")
    first = scim("GET", '/Users?filter=userName eq "USER3@acme.example.com"').get_json()
    assert first["totalResults"] == 1 and first["Resources"][0]["externalId"] == "E3"
    assert (
        scim("GET", '/Users?filter=userName eq "pre.existing@example.com"').get_json()[
            "totalResults"
        ]
        == 1
    )
    assert scim("GET", '/Users?filter=emails co "acme"').get_json()["totalResults"] == 5
    assert scim("GET", '/Users?filter=userName sw "user"').get_json()["totalResults"] == 5
    assert scim("GET", "/Users?filter=externalId pr").get_json()["totalResults"] == 5
    either = scim("GET", '/Users?filter=externalId eq "E1" or externalId eq "E2"').get_json()
    assert sorted(r["externalId"] for r in either["Resources"]) == ["E1", "E2"]
    both = '/Users?filter=emails[type eq "work" and value co "acme"] and externalId eq "E4"'
    assert scim("GET", both).get_json()["totalResults"] == 1
    page = scim("GET", "/Users?startIndex=2&count=2").get_json()
    assert (page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (6, 2, 2)
    assert scim("GET", "/Users?filter=active eq false").get_json()["totalResults"] == 0
    bad = scim("GET", '/Users?filter=nickName eq "x"')
    assert bad.status_code == 400 and bad.get_json()["scimType"] == "invalidFilter"
    broken = scim("GET", "/Users?filter=userName eq")
    assert broken.status_code == 400 and broken.get_json()["scimType"] == "invalidFilter"


def test_deactivating_archives_and_keeps_training(app, scim, make):
    body = new_user(scim)
    user_id = int(body["id"])
    course = make.course(seats=2)
    started = make.assignment(get(app, User, user_id), course, state="in_progress")
    patch = {
        "schemas": [PATCH],
        "Operations": [{"op": "Replace", "path": "active", "value": "False"}],
    }
    response = scim("PATCH", f"/Users/{user_id}", patch)
    assert response.status_code == 200 and response.get_json()["active"] is False
    user = get(app, User, user_id)
    assert user.status == "archived" and user.archived_at is not None
    assert get(app, CourseAssignment, started.id).archived_at is not None
    assert scim("GET", f"/Users/{user_id}").get_json()["active"] is False
    reactivate = {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": True}}]}
    assert scim("PATCH", f"/Users/{user_id}", reactivate).get_json()["active"] is True
    assert get(app, User, user_id).status == "active"


def test_delete_archives_hides_and_a_later_post_restores_the_same_user(app, scim, make):
    body = new_user(scim)
    user_id = int(body["id"])
    record = make.assignment(get(app, User, user_id), make.course(), state="completed")
    assert scim("DELETE", f"/Users/{user_id}").status_code == 204
    assert get(app, User, user_id).status == "archived"
    assert get(app, CourseAssignment, record.id) is not None
    assert scim("GET", f"/Users/{user_id}").status_code == 404
    assert scim("DELETE", f"/Users/{user_id}").status_code == 404
    assert (
        scim("GET", '/Users?filter=userName eq "jo.bloggs@example.com"').get_json()["totalResults"]
        == 0
    )
    again = new_user(scim)
    assert again["id"] == str(user_id) and get(app, User, user_id).status == "active"
    assert count(app, User) == 1


def test_groups_and_membership_patches(app, scim):
    a = new_user(scim, email="a@example.com")["id"]
    b = new_user(scim, email="b@example.com")["id"]
    created = scim(
        "POST",
        "/Groups",
        {"schemas": [GROUP_SCHEMA], "displayName": "Finance", "members": [{"value": a}]},
    )
    assert created.status_code == 201, created.text
    group_id = created.get_json()["id"]
    add = {
        "schemas": [PATCH],
        "Operations": [{"op": "Add", "path": "members", "value": [{"value": b}]}],
    }
    assert scim("PATCH", f"/Groups/{group_id}", add).status_code == 200
    assert [g.name for g in _groups(app, int(b))] == ["Finance"]
    remove = {
        "schemas": [PATCH],
        "Operations": [{"op": "Remove", "path": f'members[value eq "{a}"]'}],
    }
    body = scim("PATCH", f"/Groups/{group_id}", remove).get_json()
    assert [m["value"] for m in body["members"]] == [b]
    assert _groups(app, int(a)) == []
    user = scim("GET", f"/Users/{b}").get_json()
    assert user["groups"][0]["value"] == group_id
    listed = scim("GET", '/Groups?filter=displayName eq "finance"&excludedAttributes=members')
    assert (
        listed.get_json()["totalResults"] == 1
        and "members" not in listed.get_json()["Resources"][0]
    )
    unknown = {
        "schemas": [PATCH],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": "999"}]}],
    }
    assert scim("PATCH", f"/Groups/{group_id}", unknown).status_code == 400
    assert scim("DELETE", f"/Groups/{group_id}").status_code == 204
    assert count(app, Group) == 0 and _groups(app, int(b)) == []
    assert count(app, User) == 2


def _groups(app, user_id):
    with app.app_context():
        return list(db.session.get(User, user_id).groups)


@pytest.mark.parametrize("app_config", [{"SCIM_RATE_LIMIT": "3 per minute"}])
def test_each_token_is_throttled(app, scim):
    statuses = [scim("GET", "/ServiceProviderConfig").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    other = make_token(app, "Other")
    response = app.test_client().get("/scim/v2/ServiceProviderConfig", headers=headers(other))
    assert response.status_code == 200


def test_the_audit_log_names_the_token(app, scim, admin_client):
    body = new_user(scim)
    page = admin_client.get("/admin/audit")
    assert "SCIM token “Entra ID”" in page.text
    detail = admin_client.get(f"/admin/users/{body['id']}")
    assert "SCIM token “Entra ID”" in detail.text


def test_the_last_administrator_is_not_archived(app, scim, make):
    only = make.admin(email="only.admin@example.com")
    assert scim("DELETE", f"/Users/{only.id}").status_code == 409
    patch = {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]}
    assert scim("PATCH", f"/Users/{only.id}", patch).status_code == 409
    assert get(app, User, only.id).status == "active"
    make.admin(email="second.admin@example.com")
    assert scim("DELETE", f"/Users/{only.id}").status_code == 204
    assert get(app, User, only.id).status == "archived"


@pytest.mark.parametrize(
    "value", ["99999999999999999999", "2147483648", "9223372036854775808", "²", "0", "-1"]
)
def test_hostile_ids_are_answered_not_a_500(app, scim, value):
    """Ids out of the database's range or in other digits find nothing, on every form."""
    assert scim("GET", f"/Users/{value}").status_code == 404
    assert scim("GET", f"/Groups/{value}").status_code == 404
    assert scim("DELETE", f"/Users/{value}").status_code == 404
    listing = scim("GET", f'/Users?filter=id eq "{value}"')
    assert listing.status_code == 200 and listing.get_json()["totalResults"] == 0
    assert scim("GET", f'/Users?filter=groups eq "{value}"').status_code == 400
    assert scim("GET", f"/Users?startIndex={value}").status_code in (200, 400)
    group = scim("POST", "/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Fuzz"})
    members = {"schemas": [GROUP_SCHEMA], "displayName": "Fuzz", "members": [{"value": value}]}
    answer = scim("PUT", f"/Groups/{group.get_json()['id']}", members)
    assert answer.status_code == 400
    scim("DELETE", f"/Groups/{group.get_json()['id']}")
