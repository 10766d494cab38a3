"""Bulk actions: checked ids and everyone matching the filters, every action, the rules."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from lmsweb.extensions import db
from lmsweb.models import AuditEvent, Course, CourseAssignment, OutboundEmail, User, user_groups
from tests.conftest import HX, count, get

URL = "/admin/users/bulk"


def post(client, action, *, ids=None, matching=None, htmx=True, **fields):
    data: dict = {"action": action, **fields}
    if ids is not None:
        data["user_ids"] = [str(i) for i in ids]
    if matching is not None:
        data["select_all"] = "matching"
        data.update(matching)
    return client.post(URL, data=data, headers=HX if htmx else {})


def statuses(app, users):
    return {u.id: get(app, User, u.id).status for u in users}


def members(app, group):
    with app.app_context():
        return set(
            db.session.scalars(
                select(user_groups.c.user_id).where(user_groups.c.group_id == group.id)
            )
        )


def open_records(app, course):
    with app.app_context():
        return {
            a.user_id: a
            for a in db.session.scalars(
                select(CourseAssignment).where(
                    CourseAssignment.course_id == course.id,
                    CourseAssignment.archived_at.is_(None),
                )
            )
        }


def bulk_events(app):
    with app.app_context():
        return list(
            db.session.scalars(
                select(AuditEvent).where(AuditEvent.action.like("bulk.%")).order_by(AuditEvent.id)
            )
        )


@pytest.fixture
def world(make):
    """Two locations; pending users in both, active and archived ones, a group, a course."""
    north, south = make.location("North"), make.location("South")
    group = make.group("Drivers")
    w = {
        "north": north,
        "south": south,
        "group": group,
        "north_pending": [make.user(status="pending", location_id=north.id) for _ in range(3)],
        "south_pending": [make.user(status="pending", location_id=south.id) for _ in range(2)],
        "north_active": [make.user(location_id=north.id) for _ in range(2)],
        "north_archived": [make.user(status="archived", location_id=north.id)],
    }
    return w


# --- access ------------------------------------------------------------------------------


def test_anonymous_cannot_use_bulk(client, world):
    ids = [u.id for u in world["north_pending"]]
    response = client.post(URL, data={"action": "approve", "user_ids": ids})
    assert response.status_code in (400, 401, 303)
    assert set(statuses(client.application, world["north_pending"]).values()) == {"pending"}


def test_learner_cannot_use_bulk(learner_client, app, world):
    ids = [u.id for u in world["north_pending"]]
    response = learner_client.post(URL, data={"action": "approve", "user_ids": ids}, headers=HX)
    assert response.status_code == 403
    assert set(statuses(app, world["north_pending"]).values()) == {"pending"}
    assert bulk_events(app) == []


def test_empty_selection_is_answered_with_a_message(admin_client, app, world):
    response = post(admin_client, "approve", ids=[])
    assert response.status_code == 422
    assert "No users are selected" in response.text
    assert response.headers["HX-Retarget"] == "#bulk-result"
    plain = post(admin_client, "approve", ids=[], htmx=False)
    assert plain.status_code == 422 and "No users are selected" in plain.text
    nobody = post(admin_client, "approve", matching={"q": "nobody-like-this"})
    assert nobody.status_code == 422 and "No users match" in nobody.text
    assert bulk_events(app) == []


def test_unknown_action_is_refused(admin_client, world):
    response = post(admin_client, "delete_everything", ids=[world["north_pending"][0].id])
    assert response.status_code == 422


# --- approve / notify --------------------------------------------------------------------


def test_approve_checked_ids(admin_client, app, world):
    chosen = world["north_pending"][:2] + world["north_active"][:1] + world["north_archived"]
    response = post(admin_client, "approve", ids=[u.id for u in chosen])
    assert response.status_code == 200
    assert 'id="users-table"' in response.text and 'id="bulk-result"' in response.text
    assert "Approved 2 users" in response.text
    assert "1 already approved" in response.text and "1 archived" in response.text
    after = statuses(app, chosen)
    assert [after[u.id] for u in chosen] == ["active", "active", "active", "archived"]
    assert get(app, User, chosen[0].id).approved_at is not None
    assert get(app, User, world["north_pending"][2].id).status == "pending"
    (event,) = bulk_events(app)
    assert event.action == "bulk.approve"
    assert sorted(event.details["done"]) == sorted(u.id for u in chosen[:2])


def test_approve_matching_touches_only_the_filtered_set(admin_client, app, world):
    response = post(
        admin_client, "approve", matching={"location": str(world["north"].id), "status": "pending"}
    )
    assert response.status_code == 200, response.text
    assert set(statuses(app, world["north_pending"]).values()) == {"active"}
    assert set(statuses(app, world["south_pending"]).values()) == {"pending"}
    (event,) = bulk_events(app)
    assert sorted(event.details["done"]) == sorted(u.id for u in world["north_pending"])
    assert event.details["selection"] == "matching"


def test_notify_queues_emails_and_skips_archived(admin_client, app, world):
    chosen = world["north_active"] + world["north_archived"]
    response = post(admin_client, "notify", ids=[u.id for u in chosen])
    assert response.status_code == 200
    assert count(app, OutboundEmail) == 2
    assert count(app, OutboundEmail, OutboundEmail.status == "queued") == 2
    with app.app_context():
        mails = list(db.session.scalars(select(OutboundEmail)))
        assert {m.user_id for m in mails} == {u.id for u in world["north_active"]}
        assert all("/activate/" in m.body_text and "http://lms.test" in m.body_text for m in mails)
        assert all(m.subject == "Test Org: your training account" for m in mails)
    assert get(app, User, world["north_active"][0].id).notified_at is not None
    assert get(app, User, world["north_archived"][0].id).notified_at is None
    assert "1 archived" in response.text


def test_notified_link_activates_the_user(admin_client, app, client, world):
    user = world["north_active"][0]
    post(admin_client, "notify", ids=[user.id])
    with app.app_context():
        body = db.session.scalar(select(OutboundEmail.body_text))
    link = next(w for w in body.split() if "/activate/" in w).replace("http://lms.test", "")
    assert client.get(link).status_code == 200


def test_approve_notify_matching_pending_notifies_those_it_approved(admin_client, app, world):
    response = post(
        admin_client,
        "approve_notify",
        matching={"location": str(world["north"].id), "status": "pending"},
    )
    assert "Approved 3 users" in response.text
    assert "queued an invitation to 3 users" in response.text
    with app.app_context():
        notified = set(db.session.scalars(select(OutboundEmail.user_id)))
    assert notified == {u.id for u in world["north_pending"]}


def test_approve_notify_matching(admin_client, app, world):
    response = post(
        admin_client,
        "approve_notify",
        matching={"location": str(world["north"].id), "status": ["pending", "active"]},
    )
    assert response.status_code == 200
    targets = world["north_pending"] + world["north_active"]
    assert set(statuses(app, targets).values()) == {"active"}
    assert set(statuses(app, world["south_pending"]).values()) == {"pending"}
    with app.app_context():
        notified = set(db.session.scalars(select(OutboundEmail.user_id)))
    assert notified == {u.id for u in targets}
    assert "Approved 3 users" in response.text
    assert len(bulk_events(app)) == 1


# --- groups ------------------------------------------------------------------------------


def test_add_and_remove_group_checked(admin_client, app, world):
    group = world["group"]
    chosen = world["north_pending"]
    response = post(admin_client, "add_group", ids=[u.id for u in chosen], group=str(group.id))
    assert response.status_code == 200
    assert members(app, group) == {u.id for u in chosen}
    again = post(admin_client, "add_group", ids=[chosen[0].id], group=str(group.id))
    assert "1 already in Drivers" in again.text
    post(admin_client, "remove_group", ids=[chosen[0].id, chosen[1].id], group=str(group.id))
    assert members(app, group) == {chosen[2].id}


def test_group_actions_matching(admin_client, app, make, world):
    group = world["group"]
    post(admin_client, "add_group", matching={"location": str(world["south"].id)}, group=group.id)
    assert members(app, group) == {u.id for u in world["south_pending"]}
    # The list page sends its filters as filter_<name>: `group` is also the action's field.
    outsider = make.user(groups=[group])
    post(
        admin_client,
        "remove_group",
        matching={"filter_group": str(group.id), "filter_location": str(world["south"].id)},
        group=group.id,
    )
    assert members(app, group) == {outsider.id}


def test_group_action_needs_a_group(admin_client, world):
    response = post(admin_client, "add_group", ids=[world["north_pending"][0].id])
    assert response.status_code == 422
    assert "Choose a group" in response.text


# --- courses and licenses ----------------------------------------------------------------


def test_assign_course_asks_first_with_the_license_impact(admin_client, app, make, world):
    course = make.course("FIRE", seats=10)
    ids = [u.id for u in world["north_active"]]
    first = post(admin_client, "assign_course", ids=ids, course=course.id, due_date="2030-01-31")
    assert first.status_code == 200
    assert first.headers["HX-Retarget"] == "#dialog-root"
    assert "Assign FIRE to 2 users: needs 2 seats, 10 available." in first.text
    assert "<dialog" in first.text
    assert open_records(app, course) == {}
    done = post(
        admin_client, "assign_course", ids=ids, course=course.id, due_date="2030-01-31", confirm=1
    )
    assert done.status_code == 200
    records = open_records(app, course)
    assert set(records) == set(ids)
    assert {r.due_date for r in records.values()} == {date(2030, 1, 31)}
    c = get(app, Course, course.id)
    assert (c.seats_reserved, c.seats_used) == (2, 0)


def test_assign_course_matching_skips_archived_and_assigned(admin_client, app, make, world):
    course = make.course("FIRE", seats=10)
    make.assignment(world["north_active"][0], course)
    response = post(
        admin_client,
        "assign_course",
        matching={"location": str(world["north"].id), "status": ["active", "archived"]},
        course=course.id,
        confirm=1,
    )
    assert response.status_code == 200
    assert "1 already assigned FIRE" in response.text and "1 archived" in response.text
    assert set(open_records(app, course)) == {u.id for u in world["north_active"]}
    assert get(app, Course, course.id).seats_reserved == 2


def test_assign_course_never_over_allocates_nor_partly_applies(admin_client, app, make, world):
    course = make.course("FIRE", seats=3)
    targets = world["north_pending"] + world["south_pending"]  # 5 users, 3 seats
    ids = [u.id for u in targets]
    ask = post(admin_client, "assign_course", ids=ids, course=course.id)
    assert "needs 5 seats, 3 available" in ask.text
    assert "Assign only 3" in ask.text
    refused = post(admin_client, "assign_course", ids=ids, course=course.id, confirm=1)
    assert refused.status_code == 409
    assert "Nothing was assigned" in refused.text
    assert open_records(app, course) == {}
    assert get(app, Course, course.id).seats_reserved == 0
    assert bulk_events(app) == []
    fit = post(admin_client, "assign_course", ids=ids, course=course.id, confirm=1, fit=1)
    assert fit.status_code == 200
    assert "Assigned FIRE to 3 users" in fit.text
    assert "2 no FIRE license left" in fit.text
    assert len(open_records(app, course)) == 3
    c = get(app, Course, course.id)
    assert c.seats_reserved == 3 and c.seats_available == 0
    (event,) = bulk_events(app)
    assert (
        event.details["fit"] is True and len(event.details["skipped"]["no FIRE license left"]) == 2
    )


def test_change_due_date_checked_and_matching(admin_client, app, make, world):
    course = make.course("FIRE", seats=10)
    a, b = world["north_active"]
    make.assignment(a, course)
    make.assignment(b, course, state="completed")
    response = post(
        admin_client, "change_due_date", ids=[a.id, b.id], course=course.id, due_date="2031-05-01"
    )
    assert response.status_code == 200
    assert "1 already completed FIRE" in response.text
    records = open_records(app, course)
    assert records[a.id].due_date == date(2031, 5, 1)
    assert records[b.id].due_date != date(2031, 5, 1)
    post(
        admin_client,
        "change_due_date",
        matching={"location": str(world["north"].id)},
        course=course.id,
        due_date="2032-02-02",
    )
    assert open_records(app, course)[a.id].due_date == date(2032, 2, 2)


# --- archive and restore -----------------------------------------------------------------


def test_archive_user_confirms_then_archives_and_returns_seats(admin_client, app, make, world):
    course = make.course("FIRE", seats=5)
    a, b = world["north_active"]
    make.assignment(a, course)
    make.assignment(b, course, state="in_progress")
    ids = [a.id, b.id, world["north_archived"][0].id]
    ask = post(admin_client, "archive_user", ids=ids)
    assert ask.headers["HX-Retarget"] == "#dialog-root" and "Archive 3 users?" in ask.text
    assert get(app, User, a.id).status == "active"
    done = post(admin_client, "archive_user", ids=ids, confirm=1)
    assert done.status_code == 200
    assert "Archived 2 users" in done.text and "1 already archived" in done.text
    assert set(statuses(app, [a, b]).values()) == {"archived"}
    c = get(app, Course, course.id)
    assert (c.seats_reserved, c.seats_used) == (0, 1)
    assert count(app, CourseAssignment) == 2  # training records are never deleted


def test_archive_user_never_archives_the_acting_admin(admin_client, app, admin):
    response = post(admin_client, "archive_user", matching={"role": "admin"}, confirm=1)
    assert response.status_code == 200
    assert "you cannot archive yourself" in response.text
    assert get(app, User, admin.id).status == "active"


def test_archive_activity_matching_of_one_course(admin_client, app, make, world):
    fire, first_aid = make.course("FIRE", seats=5), make.course("AID", seats=5)
    a, b = world["north_active"]
    make.assignment(a, fire)
    make.assignment(a, first_aid)
    make.assignment(b, fire, state="completed")
    outsider = make.user(location_id=world["south"].id)
    make.assignment(outsider, fire)
    response = post(
        admin_client,
        "archive_activity",
        matching={"location": str(world["north"].id)},
        course=fire.id,
        confirm=1,
    )
    assert response.status_code == 200
    assert set(open_records(app, fire)) == {outsider.id}
    assert set(open_records(app, first_aid)) == {a.id}
    assert set(statuses(app, [a, b]).values()) == {"active"}
    assert get(app, Course, fire.id).seats_reserved == 1  # a's seat returned, outsider's kept


def test_restore_checked_and_matching(admin_client, app, make, world):
    archived = world["north_archived"] + [make.user(status="archived") for _ in range(2)]
    response = post(admin_client, "restore", ids=[archived[0].id, world["north_active"][0].id])
    assert "Restored 1 user" in response.text and "1 not archived" in response.text
    assert get(app, User, archived[0].id).status == "active"
    post(admin_client, "restore", matching={"status": "archived"})
    assert set(statuses(app, archived).values()) == {"active"}


# --- export via the bulk bar, plain requests, the page ------------------------------------


def test_export_selected_redirects_to_the_download(admin_client, world):
    ids = [u.id for u in world["north_active"]]
    response = post(admin_client, "export", ids=ids)
    assert response.status_code == 204
    assert response.headers["HX-Redirect"].startswith("/admin/users/export.xlsx?user_ids=")
    matching = post(admin_client, "export", matching={"status": "pending"}, htmx=False)
    assert matching.status_code == 303
    assert matching.headers["Location"] == "/admin/users/export.xlsx?status=pending"


def test_plain_request_gets_a_result_page_and_a_confirmation_page(admin_client, app, world):
    ids = [u.id for u in world["north_pending"]]
    page = post(admin_client, "approve", ids=ids, htmx=False, location=str(world["north"].id))
    assert page.status_code == 200
    assert "<h1>Bulk action</h1>" in page.text and "Approved 3 users" in page.text
    assert f'href="/admin/users?location={world["north"].id}"' in page.text
    confirm = post(admin_client, "archive_user", ids=ids, htmx=False)
    assert confirm.status_code == 200 and "<h1>Confirm bulk action</h1>" in confirm.text
    assert 'name="confirm" value="1"' in confirm.text
    assert set(statuses(app, world["north_pending"]).values()) == {"active"}


def test_users_page_has_the_bulk_bar_banner_and_export_link(admin_client, world):
    page = admin_client.get("/admin/users")
    assert '<form id="bulk-form"' in page.text
    assert 'id="selection-banner"' in page.text
    # The export links say which statuses they export (the view shows pending users too).
    assert 'href="/admin/users/export.xlsx?status=active"' in page.text
    assert 'href="/admin/users/export.xlsx?status=pending&amp;status=active"' in page.text
    for a in ("approve_notify", "assign_course", "archive_user", "export"):
        assert f'value="{a}"' in page.text
    partial = admin_client.get("/admin/users?status=pending", headers=HX)
    assert 'name="filter_status" value="pending"' in partial.text
    assert '<form id="bulk-form"' not in partial.text


def test_approve_notify_statements_do_not_grow_with_the_selection(app, admin_client, make):
    """Set-based: twice the users, the same number of statements (no per-user flush)."""
    from sqlalchemy import event

    small, large = make.location("Small"), make.location("Large")
    for _ in range(5):
        make.user(status="pending", location_id=small.id)
    for _ in range(40):
        make.user(status="pending", location_id=large.id)

    def statements_for(location):
        seen = []

        def listener(conn, cursor, statement, parameters, context, executemany):
            seen.append(statement)

        with app.app_context():
            engine = db.engine
        event.listen(engine, "before_cursor_execute", listener)
        try:
            response = post(admin_client, "approve_notify", matching={"location": location.id})
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        assert response.status_code == 200
        return len(seen)

    assert statements_for(large) == statements_for(small)
    assert count(app, OutboundEmail) == 45
