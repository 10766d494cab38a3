"""Groups and locations: list with member counts, add, rename, remove when unused."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lmsweb.extensions import db
from lmsweb.models import AuditEvent, EnrolmentRule, Group, Location
from tests.conftest import HX, count, get


@pytest.mark.parametrize("slug,model", [("groups", Group), ("locations", Location)])
def test_add_rename_remove(app, admin_client, slug, model):
    response = admin_client.post(f"/admin/{slug}/new", data={"name": "  North   Wing "}, headers=HX)
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<div id="org-content"')
    assert count(app, model, model.name == "North Wing") == 1
    with app.app_context():
        item_id = db.session.scalar(select(model.id))
    duplicate = admin_client.post(f"/admin/{slug}/new", data={"name": "north wing"}, headers=HX)
    assert duplicate.status_code == 422 and "already exists" in duplicate.text
    empty = admin_client.post(f"/admin/{slug}/new", data={"name": "  "})
    assert empty.status_code == 422 and "Enter a name." in empty.text
    renamed = admin_client.post(f"/admin/{slug}/{item_id}/rename", data={"name": "South"})
    assert renamed.status_code == 303
    assert get(app, model, item_id).name == "South"
    admin_client.post(f"/admin/{slug}/new", data={"name": "East"})
    clash = admin_client.post(f"/admin/{slug}/{item_id}/rename", data={"name": "EAST"}, headers=HX)
    assert clash.status_code == 422 and "already exists" in clash.text
    removed = admin_client.post(f"/admin/{slug}/{item_id}/remove", headers=HX)
    assert removed.status_code == 200
    assert get(app, model, item_id) is None
    singular = slug[:-1]
    for action in ("create", "rename", "remove"):
        assert count(app, AuditEvent, AuditEvent.action == f"{singular}.{action}") >= 1


def test_lists_show_member_counts_linking_to_the_filtered_users(admin_client, make):
    group, location = make.group("Nurses"), make.location("Porto")
    make.user(groups=[group], location_id=location.id)
    make.user(groups=[group])
    groups = admin_client.get("/admin/groups")
    assert "<h1>Groups</h1>" in groups.text
    assert f'href="/admin/users?group={group.id}">2 ' in groups.text
    locations = admin_client.get("/admin/locations", headers=HX)
    assert f'href="/admin/users?location={location.id}">1 ' in locations.text
    assert "<h1>" not in locations.text
    filtered = admin_client.get(f"/admin/users?group={group.id}")
    assert "2 users" in filtered.text


def test_remove_refused_while_in_use(app, admin_client, make):
    group, location = make.group("Busy"), make.location("Busy place")
    make.user(groups=[group], location_id=location.id)
    make.user(groups=[group])
    refused = admin_client.post(f"/admin/groups/{group.id}/remove", headers=HX)
    assert refused.status_code == 409
    assert (
        refused.text
        == "“Busy” cannot be removed: 2 users are in it. Move them to another group first."
    )
    plain = admin_client.post(f"/admin/locations/{location.id}/remove")
    assert plain.status_code == 303
    assert "1 user is in it" in admin_client.get("/admin/locations").text
    assert get(app, Group, group.id) and get(app, Location, location.id)


@pytest.mark.parametrize("slug", ["groups", "locations"])
def test_remove_refused_while_an_enrolment_rule_names_it(app, admin_client, make, slug):
    group, location, course = make.group("Night shift"), make.location("Faro"), make.course()
    item = group if slug == "groups" else location
    with app.app_context():
        rule = EnrolmentRule(course_id=course.id, due_days=30, **{f"{slug[:-1]}_id": item.id})
        db.session.add(rule)
        db.session.commit()
    refused = admin_client.post(f"/admin/{slug}/{item.id}/remove", headers=HX)
    assert refused.status_code == 409
    assert f"cannot be removed: 1 enrolment rule gives {course.code}" in refused.text
    assert get(app, Group if slug == "groups" else Location, item.id) is not None
