"""Scoped SCIM tokens: a token scoped to locations and/or groups sees, creates and changes only
the people it reaches, and only its own groups; everything else is as if absent."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lmsweb.extensions import db
from lmsweb.models import AuditEvent, Group, Location, ScimToken, User, user_groups
from tests.conftest import count, get
from tests.scim_support import (
    ENTERPRISE,
    GROUP_SCHEMA,
    PATCH,
    USER_SCHEMA,
    headers,
    make_scoped_token,
    make_token,
)


@pytest.fixture
def people(make):
    """Lisbon and the Warehouse group are the token's; Porto and Office are not."""
    lisbon, porto = make.location("Lisbon"), make.location("Porto")
    warehouse, office = make.group("Warehouse"), make.group("Office")
    return {
        "lisbon": lisbon,
        "porto": porto,
        "warehouse": warehouse,
        "office": office,
        # in scope by location
        "lis": make.learner(email="lis@example.com", location_id=lisbon.id),
        # in scope by group (also in Office, which the token must not see)
        "wh": make.learner(
            email="wh@example.com", location_id=porto.id, groups=[warehouse, office]
        ),
        # out of scope
        "por": make.learner(email="por@example.com", location_id=porto.id),
        "off": make.learner(email="off@example.com", location_id=porto.id, groups=[office]),
    }


@pytest.fixture
def scoped(app, client, people):
    token = make_scoped_token(app, "Lisbon directory", ["Lisbon"], ["Warehouse"])

    def send(method: str, path: str, body=None):
        return client.open(f"/scim/v2{path}", method=method, json=body, headers=headers(token))

    return send


@pytest.fixture
def everyone(app, client, people):
    token = make_token(app, "Whole organisation")

    def send(method: str, path: str, body=None):
        return client.open(f"/scim/v2{path}", method=method, json=body, headers=headers(token))

    return send


def ids(response) -> set[int]:
    assert response.status_code == 200, response.text
    return {int(r["id"]) for r in response.get_json().get("Resources", [])}


def user_body(email: str, department: str | None = None) -> dict:
    body = {
        "schemas": [USER_SCHEMA],
        "userName": email,
        "name": {"givenName": "New", "familyName": "Person"},
        "emails": [{"value": email, "primary": True}],
        "active": True,
    }
    if department is not None:
        body["schemas"].append(ENTERPRISE)
        body[ENTERPRISE] = {"department": department}
    return body


def patch(*operations) -> dict:
    return {"schemas": [PATCH], "Operations": list(operations)}


def test_lists_filters_and_gets_never_reveal_anyone_out_of_scope(scoped, everyone, people, make):
    lis, wh, por, off = (people[k].id for k in ("lis", "wh", "por", "off"))
    # In scope at Lisbon, but only in a group the token does not see.
    office_lis = make.learner(
        email="office.lis@example.com", location_id=people["lisbon"].id, groups=[people["office"]]
    ).id
    assert ids(everyone("GET", "/Users")) == {lis, wh, por, off, office_lis}

    listed = scoped("GET", "/Users")
    assert ids(listed) == {lis, wh, office_lis} and listed.get_json()["totalResults"] == 3
    searched = scoped("POST", "/Users/.search", {"schemas": [], "filter": 'emails co "example"'})
    assert ids(searched) == {lis, wh, office_lis} and searched.get_json()["totalResults"] == 3
    for expression in (
        'userName eq "por@example.com"',
        'emails co "off@"',
        f'groups eq "{people["office"].id}"',
        'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Porto" '
        'and userName eq "por@example.com"',
    ):
        found = scoped("GET", f"/Users?filter={expression}")
        assert ids(found) == set() and found.get_json()["totalResults"] == 0, expression
    assert ids(scoped("GET", "/Users?filter=groups pr")) == {wh}
    assert scoped("GET", f"/Users/{office_lis}").get_json().get("groups") is None

    # By id: out of scope answers exactly as an id nobody has.
    missing = scoped("GET", "/Users/999999")
    for user_id in (por, off):
        hidden = scoped("GET", f"/Users/{user_id}")
        assert hidden.status_code == missing.status_code == 404
        assert hidden.get_json()["detail"].replace(str(user_id), "N") == missing.get_json()[
            "detail"
        ].replace("999999", "N")
    # A user's groups: only the token's.
    shown = scoped("GET", f"/Users/{wh}").get_json()
    assert [g["display"] for g in shown["groups"]] == ["Warehouse"]
    assert "Office" not in scoped("GET", "/Users").text

    # Groups: only the scope's, and their members only people in scope.
    assert ids(scoped("GET", "/Groups")) == {people["warehouse"].id}
    assert scoped("GET", f"/Groups/{people['office'].id}").status_code == 404
    assert ids(scoped("GET", f'/Groups?filter=members eq "{off}"')) == set()
    members = scoped("GET", f"/Groups/{people['warehouse'].id}").get_json()["members"]
    assert [int(m["value"]) for m in members] == [wh]


def test_changes_to_out_of_scope_users_are_404_and_change_nothing(app, scoped, people):
    por = people["por"]
    body = user_body("por@example.com", "Lisbon")
    assert scoped("PUT", f"/Users/{por.id}", body).status_code == 404
    assert (
        scoped(
            "PATCH", f"/Users/{por.id}", patch({"op": "replace", "path": "active", "value": False})
        ).status_code
        == 404
    )
    assert scoped("DELETE", f"/Users/{por.id}").status_code == 404
    after = get(app, User, por.id)
    assert (after.status, after.location_id, after.first_name) == (
        "active",
        people["porto"].id,
        por.first_name,
    )
    assert count(app, AuditEvent, AuditEvent.target_id == por.id) == 0


def test_a_user_outside_the_scope_is_never_created(app, scoped, people):
    before = count(app, User)
    for department in ("Porto", "Berlin", None):
        refused = scoped("POST", "/Users", user_body("new@example.com", department))
        assert refused.status_code == 403, (department, refused.text)
        detail = refused.get_json()["detail"]
        assert "Lisbon, Warehouse" in detail and "department" in detail
    assert count(app, User) == before
    assert count(app, Location, Location.name == "Berlin") == 0  # not even the location
    assert count(app, AuditEvent, AuditEvent.action == "user.create") == 0

    created = scoped("POST", "/Users", user_body("new@example.com", "lisbon"))
    assert created.status_code == 201, created.text
    assert get(app, User, int(created.get_json()["id"])).location_id == people["lisbon"].id


def test_put_and_patch_may_not_move_a_user_out_of_scope(app, scoped, people):
    lis, wh = people["lis"], people["wh"]
    moved = scoped("PUT", f"/Users/{lis.id}", user_body("lis@example.com", "Porto"))
    assert moved.status_code == 403 and "Nothing was changed" in moved.get_json()["detail"]
    replace = {"op": "replace", "path": f"{ENTERPRISE}:department", "value": "Porto"}
    assert scoped("PATCH", f"/Users/{lis.id}", patch(replace)).status_code == 403
    remove = {"op": "remove", "path": f"{ENTERPRISE}:department"}
    assert scoped("PATCH", f"/Users/{lis.id}", patch(remove)).status_code == 403
    assert get(app, User, lis.id).location_id == people["lisbon"].id
    assert count(app, Location) == 2
    # Someone in one of its groups may be anywhere.
    assert scoped("PATCH", f"/Users/{wh.id}", patch(replace)).status_code == 200
    renamed = {"op": "replace", "path": "name.givenName", "value": "Lia"}
    assert scoped("PATCH", f"/Users/{lis.id}", patch(renamed)).status_code == 200
    assert get(app, User, lis.id).first_name == "Lia"


def test_a_deleted_user_out_of_scope_is_not_brought_back(app, scoped, everyone, people):
    por = people["por"]
    assert everyone("DELETE", f"/Users/{por.id}").status_code == 204
    again = scoped("POST", "/Users", user_body("por@example.com", "Lisbon"))
    assert again.status_code == 409
    after = get(app, User, por.id)
    assert after.status == "archived" and after.location_id == people["porto"].id


def test_group_members_only_in_scope_and_other_groups_untouchable(app, scoped, people):
    warehouse, office = people["warehouse"], people["office"]
    lis, wh, por = people["lis"], people["wh"], people["por"]
    add = {"op": "add", "path": "members", "value": [{"value": str(por.id)}]}
    refused = scoped("PATCH", f"/Groups/{warehouse.id}", patch(add))
    assert refused.status_code == 400 and f"No user {por.id}" in refused.get_json()["detail"]
    assert scoped("PATCH", f"/Groups/{office.id}", patch(add)).status_code == 404
    put = {"schemas": [GROUP_SCHEMA], "displayName": "Office", "members": []}
    assert scoped("PUT", f"/Groups/{office.id}", put).status_code == 404
    assert scoped("DELETE", f"/Groups/{office.id}").status_code == 404
    with app.app_context():
        assert set(
            db.session.scalars(
                select(user_groups.c.user_id).where(user_groups.c.group_id == office.id)
            )
        ) == {wh.id, people["off"].id}
        assert db.session.scalar(select(User).where(User.id == por.id)).groups == []

    add_lis = {"op": "add", "path": "members", "value": [{"value": str(lis.id)}]}
    assert scoped("PATCH", f"/Groups/{warehouse.id}", patch(add_lis)).status_code == 200
    remove_wh = {"op": "remove", "path": f'members[value eq "{wh.id}"]'}
    assert scoped("PATCH", f"/Groups/{warehouse.id}", patch(remove_wh)).status_code == 200
    # Out of the group, at Porto: out of the token's sight from now on.
    assert scoped("GET", f"/Users/{wh.id}").status_code == 404
    members = scoped("GET", f"/Groups/{warehouse.id}").get_json()["members"]
    assert [int(m["value"]) for m in members] == [lis.id]


def test_a_group_the_token_creates_joins_its_scope_and_leaves_it_when_deleted(
    app, scoped, everyone, people
):
    created = scoped("POST", "/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Night"})
    assert created.status_code == 201, created.text
    night = int(created.get_json()["id"])
    assert night in ids(scoped("GET", "/Groups"))
    with app.app_context():
        token = db.session.scalar(select(ScimToken).where(ScimToken.name == "Lisbon directory"))
        assert token.scope.label == "Lisbon, Night, Warehouse"
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "group.create"))
        assert event.details["joined_scope"] is True and "scope" in event.summary
    # Its reach did not grow: only people it reached may join.
    add = {"op": "add", "path": "members", "value": [{"value": str(people["off"].id)}]}
    assert scoped("PATCH", f"/Groups/{night}", patch(add)).status_code == 400
    assert scoped("DELETE", f"/Groups/{night}").status_code == 204
    assert count(app, Group, Group.id == night) == 0
    with app.app_context():
        token = db.session.scalar(select(ScimToken).where(ScimToken.name == "Lisbon directory"))
        assert token.scope.label == "Lisbon, Warehouse"
    # A group that defines someone else's scope stays, whoever asks.
    kept = everyone("DELETE", f"/Groups/{people['warehouse'].id}")
    assert kept.status_code == 409 and "scope" in kept.get_json()["detail"]
    assert count(app, Group, Group.id == people["warehouse"].id) == 1


def test_a_token_scoped_to_groups_only_creates_nobody(app, client, people):
    token = make_scoped_token(app, "Warehouse only", [], ["Warehouse"])
    refused = client.post(
        "/scim/v2/Users", json=user_body("x@example.com", "Lisbon"), headers=headers(token)
    )
    assert refused.status_code == 403
    assert "must already be in one of its groups" in refused.get_json()["detail"]
    listed = client.get("/scim/v2/Users", headers=headers(token))
    assert ids(listed) == {people["wh"].id}


def test_schemas_tell_a_scoped_client_which_departments_it_may_give(scoped, everyone):
    def department(send):
        schemas = send("GET", "/Schemas").get_json()["Resources"]
        enterprise = next(s for s in schemas if s["id"] == ENTERPRISE)
        return next(a for a in enterprise["attributes"] if a["name"] == "department")

    assert department(scoped)["canonicalValues"] == ["Lisbon"]
    assert department(scoped)["required"] is True
    assert "canonicalValues" not in department(everyone) or not department(everyone).get(
        "canonicalValues"
    )
    assert department(everyone)["required"] is False

    def extension_required(send):
        user = send("GET", "/ResourceTypes/User").get_json()
        return [e["required"] for e in user["schemaExtensions"] if e["schema"] == ENTERPRISE]

    assert extension_required(scoped) == [True] and extension_required(everyone) == [False]


def test_cli_creates_a_scoped_token_and_refuses_unknown_names(app, runner, client, people):
    result = runner.invoke(
        args=["lms", "scim-token", "create", "--name", "Okta Lisbon"]
        + ["--location", "lisbon", "--group", "Warehouse"]
    )
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert "scoped to Lisbon, Warehouse" in result.output
    assert ids(client.get("/scim/v2/Users", headers=headers(token))) == {
        people["lis"].id,
        people["wh"].id,
    }
    unknown = runner.invoke(
        args=["lms", "scim-token", "create", "--name", "Typo"]
        + ["--location", "Lisbon", "--location", "Lisbn", "--group", "Wearhouse"]
    )
    assert unknown.exit_code != 0
    assert "'Lisbn'" in unknown.output and "'Wearhouse'" in unknown.output
    assert "Nothing was created" in unknown.output
    assert count(app, ScimToken, ScimToken.name == "Typo") == 0
    plain = runner.invoke(args=["lms", "scim-token", "create", "--name", "Everyone"])
    assert plain.exit_code == 0 and "organisation-wide" in plain.output


def test_settings_page_creates_scoped_tokens_and_shows_each_tokens_reach(app, admin_client, people):
    page = admin_client.get("/admin/settings/scim")
    assert 'name="reach"' in page.text and f'value="{people["lisbon"].id}"' in page.text
    created = admin_client.post(
        "/admin/settings/scim/tokens",
        data={
            "name": "Lisbon HR",
            "reach": "scope",
            "location": [str(people["lisbon"].id)],
            "group": [str(people["warehouse"].id)],
        },
    )
    assert created.status_code == 201, created.text
    token = created.text.split('id="new-token-value" value="')[1].split('"')[0]
    assert "Lisbon, Warehouse" in created.text
    with app.app_context():
        row = db.session.scalar(select(ScimToken).where(ScimToken.name == "Lisbon HR"))
        assert row.scope.label == "Lisbon, Warehouse"
        event = db.session.scalar(
            select(AuditEvent).where(AuditEvent.action == "scim_token.create")
        )
        assert event.details["scope"] == {"locations": ["Lisbon"], "groups": ["Warehouse"]}
    assert ids(app.test_client().get("/scim/v2/Users", headers=headers(token))) == {
        people["lis"].id,
        people["wh"].id,
    }
    # Organisation-wide is said so in the table.
    admin_client.post("/admin/settings/scim/tokens", data={"name": "All", "reach": "organisation"})
    row_html = admin_client.get("/admin/settings/scim").text.split('id="scim-token-')[1:]
    assert any(">All<" in r and ">Everyone<" in r for r in row_html)

    # Scoped to nothing, or to a location that is not there: refused, nothing created.
    nothing = admin_client.post(
        "/admin/settings/scim/tokens", data={"name": "Empty", "reach": "scope"}
    )
    assert nothing.status_code == 422 and "at least one location or group" in nothing.text
    bogus = admin_client.post(
        "/admin/settings/scim/tokens",
        data={"name": "Bogus", "reach": "scope", "location": ["999999", "x"]},
    )
    assert bogus.status_code == 422 and "Unknown location" in bogus.text
    odd = admin_client.post(
        "/admin/settings/scim/tokens", data={"name": "Odd", "reach": "somewhere"}
    )
    assert odd.status_code == 422
    assert count(app, ScimToken) == 2


def test_the_tokens_table_reads_the_same_statements_however_many_tokens(app, admin_client, people):
    import sqlalchemy as sa

    with app.app_context():
        engine = db.engine

    def statements() -> int:
        seen: list[str] = []

        def on_execute(*args):
            seen.append(args[2])

        sa.event.listen(engine, "before_cursor_execute", on_execute)
        try:
            assert admin_client.get("/admin/settings/scim").status_code == 200
        finally:
            sa.event.remove(engine, "before_cursor_execute", on_execute)
        return len(seen)

    make_scoped_token(app, "First", ["Lisbon"], ["Warehouse"])
    few = statements()
    for n in range(6):
        make_scoped_token(app, f"More {n}", ["Porto", "Lisbon"], ["Office"])
        make_token(app, f"Wide {n}")
    assert statements() == few
