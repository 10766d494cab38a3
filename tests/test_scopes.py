"""Scoped administrators (#17): an administrator scoped to some locations and groups sees
and changes only their people, on every /admin route.

The scope matrix walks app.url_map, so a new /admin route is checked without anyone
remembering to add it: it fails until it declares how it is scoped (lmsweb/security.py),
and a scoped administrator acting on someone outside the scope gets 403 or 404, or a page
that does not show them, and nothing changes."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from openpyxl import Workbook, load_workbook

from lmsweb import scope
from lmsweb.extensions import db
from lmsweb.models import (
    AuditEvent,
    CourseAssignment,
    Group,
    ImportJob,
    Location,
    OutboundEmail,
    Scope,
    User,
    scope_groups,
    scope_locations,
    user_groups,
)
from lmsweb.security import ORG_WIDE, SCOPED, is_admin_rule, scope_declaration
from tests.conftest import HX, count, get, login
from tests.test_route_inventory import _routes

# What a scoped administrator may use; every other /admin endpoint is organisation-wide.
# Widening this list is a security decision: it changes with the code, in review.
EXPECTED_SCOPED = {
    "users.index",
    "users.manager_options",
    "users.invite_status",
    "users.detail",
    "users.approve_user",
    "users.notify_user",
    "users.confirm_archive",
    "users.archive",
    "users.restore",
    "users.edit_groups",
    "users.edit_courses",
    "users.row_menu",
    "users.remind_user",
    "users.reset_password",
    "users.bulk",
    "users.export_users",
    "users.import_users",
    "users.import_job",
    "users.confirm_import",
    "users.import_errors",
    "users.import_template",
    "users.new_user",
    "users.undo_change",
    "dashboard.index",
    "dashboard.export_records",
    "dashboard.refresh_figures",
    "outbox.index",
    "outbox.retry_email",
    "audit_log.index",
    "audit_log.export_events",
}


@dataclass
class World:
    lisbon: Location
    porto: Location
    madrid: Location
    warehouse: Group
    safety: Group
    board: Group
    ada: User  # organisation-wide
    sam: User  # scoped: Lisbon + Warehouse
    lena: User  # at Lisbon, in Safety
    walt: User  # at Porto, in Warehouse
    otto: User  # at Madrid, in Board: out of scope
    ola: User  # an administrator at Lisbon: in scope, but an administrator
    course: object
    otto_assignment: CourseAssignment
    lena_assignment: CourseAssignment
    otto_email: int


def scope_admin(app, admin: User, locations=(), groups=()) -> None:
    with app.app_context():
        user = db.session.get(User, admin.id)
        scope.set_scope(
            user,
            [db.session.get(Location, x.id) for x in locations],
            [db.session.get(Group, g.id) for g in groups],
        )
        db.session.commit()


@pytest.fixture
def world(app, make) -> World:
    lisbon, porto, madrid = make.location("Lisbon"), make.location("Porto"), make.location("Madrid")
    warehouse, safety, board = make.group("Warehouse"), make.group("Safety"), make.group("Board")
    ada = make.admin(first_name="Ada", last_name="Admin", email="ada@example.com")
    sam = make.admin(first_name="Sam", last_name="Scoped", email="sam@example.com")
    scope_admin(app, sam, [lisbon], [warehouse])
    lena = make.learner(
        first_name="Lena", last_name="Lisboa", email="lena@example.com", location_id=lisbon.id,
        groups=[safety], status="pending",
    )  # fmt: skip
    walt = make.learner(
        first_name="Walt", last_name="Worker", email="walt@example.com", location_id=porto.id,
        groups=[warehouse],
    )  # fmt: skip
    otto = make.learner(
        first_name="Otto", last_name="Outsider", email="otto@example.com",
        location_id=madrid.id, groups=[board], status="pending",
    )  # fmt: skip
    ola = make.admin(
        first_name="Ola", last_name="Other", email="ola@example.com", location_id=lisbon.id
    )
    course = make.course("SAFE-1", seats=10)
    otto_assignment = make.assignment(otto, course)
    lena_assignment = make.assignment(lena, course)
    with app.app_context():
        from lmsweb.notifications import queue_invitation

        email = queue_invitation(db.session.get(User, otto.id))
        email.status = "failed"
        queue_invitation(db.session.get(User, lena.id))
        db.session.commit()
        otto_email = email.id
    return World(
        lisbon, porto, madrid, warehouse, safety, board, ada, sam, lena, walt, otto, ola,
        course, otto_assignment, lena_assignment, otto_email,
    )  # fmt: skip


@pytest.fixture
def sam_client(app, world):
    client = app.test_client()
    login(client, world.sam.email)
    return client


@pytest.fixture
def ada_client(app, world):
    client = app.test_client()
    login(client, world.ada.email)
    return client


def snapshot(app) -> dict:
    """Everything a scoped administrator must not change by acting outside their scope."""
    with app.app_context():

        def rows(query):
            return sorted(tuple(r) for r in db.session.execute(query))

        return {
            "users": rows(
                sa.select(
                    User.id,
                    User.email,
                    User.first_name,
                    User.last_name,
                    User.status,
                    User.role,
                    User.location_id,
                    User.scope_id,
                    User.session_version,
                    User.manager_id,
                    User.notified_at,
                    User.archived_at,
                )
            ),  # fmt: skip
            "assignments": rows(
                sa.select(
                    CourseAssignment.id,
                    CourseAssignment.user_id,
                    CourseAssignment.state,
                    CourseAssignment.due_date,
                    CourseAssignment.archived_at,
                )
            ),  # fmt: skip
            "user_groups": rows(sa.select(user_groups)),
            "scopes": rows(sa.select(Scope.id))
            + rows(sa.select(scope_locations))
            + rows(sa.select(scope_groups)),
            "locations": rows(sa.select(Location.id, Location.name)),
            "groups": rows(sa.select(Group.id, Group.name)),
            # Reading exports records that it happened; nothing else may be audited.
            "audit": rows(
                sa.select(AuditEvent.id, AuditEvent.action).where(
                    ~AuditEvent.action.like("%.export")
                )
            ),
            "outbox": rows(sa.select(OutboundEmail.id, OutboundEmail.status)),
            "courses": rows(sa.text("SELECT id, seats_total, seats_reserved FROM courses")),
        }


def text_of(response) -> str:
    """The response as text; a workbook's cells joined."""
    if response.data[:2] == b"PK":
        book = load_workbook(io.BytesIO(response.data), read_only=True)
        return " ".join(
            str(cell) for sheet in book.worksheets for row in sheet.iter_rows(values_only=True)
            for cell in row if cell is not None
        )  # fmt: skip
    return response.get_data(as_text=True)


# --- the matrix -----------------------------------------------------------------------------


def test_every_admin_endpoint_declares_how_it_is_scoped(app):
    """A new /admin route fails here until it says @scoped or @org_wide (or sits in an
    organisation-wide blueprint); the scoped ones are exactly the reviewed list."""
    undeclared, scoped_endpoints = [], set()
    for rule in app.url_map.iter_rules():
        if not is_admin_rule(rule.rule):
            continue
        declared = scope_declaration(app, rule.endpoint)
        if declared not in (SCOPED, ORG_WIDE):
            undeclared.append(rule.endpoint)
        if declared == SCOPED:
            scoped_endpoints.add(rule.endpoint)
    assert undeclared == []
    assert scoped_endpoints == EXPECTED_SCOPED


def _matrix_url(app, rule, world: World) -> str:
    """The route's URL, naming out-of-scope things: Otto, his email, an import job of
    someone else; other ids name existing rows (organisation-wide routes refuse first)."""
    values = {}
    for name in rule.arguments:
        values[name] = {
            "user_id": world.otto.id,
            "email_id": world.otto_email,
            "course_id": world.course.id,
            "item_id": world.madrid.id,
            "token_id": 1,
            "job_id": world_job(app, world),
        }.get(name, 1)
    with app.test_request_context():
        return app.url_map.bind("localhost").build(rule.endpoint, values)


_JOBS: dict[int, int] = {}


def world_job(app, world: World) -> int:
    """An import job of the organisation-wide administrator (not Sam's)."""
    key = id(app)
    if key not in _JOBS:
        with app.app_context():
            job = ImportJob(created_by_id=world.ada.id, filename="ada.xlsx", status="ready")
            job.data = {"fields": ["email"], "rows": [["otto@example.com"]], "lines": [2]}
            db.session.add(job)
            db.session.commit()
            _JOBS[key] = job.id
    return _JOBS[key]


def matrix_params(world: World) -> dict:
    """Query and form values naming out-of-scope users, assignments, groups, locations."""
    return {
        "user_ids": [str(world.otto.id), str(world.ola.id)],
        "action": "archive_user",
        "confirm": "1",
        "location": str(world.madrid.id),
        "group": str(world.board.id),
        "manager": str(world.otto.id),
        "assignment": str(world.otto_assignment.id),
        "course": str(world.course.id),
        "mode": "user",
        "first_name": "New",
        "last_name": "Person",
        "email": "new.person@example.com",
        "q": "",
    }


LEAKS = ("Madrid", "Board", "otto@example.com", "Outsider")


def test_scope_matrix_a_scoped_admin_never_reaches_out_of_scope(app, world, sam_client):
    """Every /admin route, GET and POST, aimed at out-of-scope things: 403 or 404, or an
    answer that names none of them; and the database is as it was."""
    before = snapshot(app)
    problems = []
    for rule, method in _routes(app):
        if not is_admin_rule(rule.rule):
            continue
        url = _matrix_url(app, rule, world)
        params = matrix_params(world)
        for headers in ({}, HX):
            if method == "GET":
                response = sam_client.get(url, query_string=params, headers=headers)
            else:
                response = sam_client.open(url, method=method, data=params, headers=headers)
            status = response.status_code
            if status >= 500:
                problems.append(f"{method} {url} -> {status}")
                continue
            if status in (403, 404):
                continue
            if scope_declaration(app, rule.endpoint) != SCOPED:
                problems.append(f"{method} {url} (organisation-wide) -> {status}")
                continue
            body = text_of(response)
            leaked = [word for word in LEAKS if word in body]
            if leaked:
                problems.append(f"{method} {url} -> {status} shows {leaked}")
    assert problems == []
    assert snapshot(app) == before


def test_organisation_wide_admin_is_not_narrowed(app, world, ada_client):
    """The same requests by an organisation-wide administrator do reach Otto."""
    assert ada_client.get(f"/admin/users/{world.otto.id}").status_code == 200
    page = ada_client.get("/admin/users").text
    assert "otto@example.com" in page and "Madrid" in page


# --- one choke point ------------------------------------------------------------------------


def test_list_count_and_filter_options_show_only_the_scope(world, sam_client):
    page = sam_client.get("/admin/users?status=pending&status=active&status=archived").text
    assert "lena@example.com" in page and "walt@example.com" in page
    assert "ola@example.com" in page  # an administrator in scope is listed (not editable)
    assert "otto@example.com" not in page and "ada@example.com" not in page
    # Options: the scope's own, and those of the people in it; nothing else.
    for name in ("Lisbon", "Porto", "Warehouse", "Safety"):
        assert name in page
    for name in ("Madrid", "Board"):
        assert name not in page
    assert "Scope: Lisbon, Warehouse" in page


def test_the_options_statement_kept_for_organisation_wide_admins_is_theirs_alone(
    app, world, make, ada_client, sam_client
):
    # The organisation-wide statement is built once and kept (listing._filter_choices): a
    # scoped administrator after one still gets their own, and a group made since shows.
    assert "Madrid" in ada_client.get("/admin/users").text
    page = sam_client.get("/admin/users").text
    assert "Lisbon" in page and "Madrid" not in page and "Board" not in page
    make.group("Night shift")
    assert "Night shift" in ada_client.get("/admin/users").text
    assert "Night shift" not in sam_client.get("/admin/users").text


def test_a_filter_naming_an_out_of_scope_location_reveals_nothing(world, sam_client):
    response = sam_client.get(f"/admin/users?location={world.madrid.id}", headers=HX)
    assert response.status_code == 200
    assert "Madrid" not in response.text
    assert "otto@example.com" not in response.text
    group = sam_client.get(f"/admin/users?group={world.board.id}", headers=HX)
    assert "Board" not in group.text and "otto@example.com" not in group.text


def test_loading_a_user_outside_the_scope_is_404_and_an_admin_403(world, sam_client):
    assert sam_client.get(f"/admin/users/{world.otto.id}").status_code == 404
    assert sam_client.post(f"/admin/users/{world.otto.id}/approve").status_code == 404
    response = sam_client.get(f"/admin/users/{world.ola.id}")
    assert response.status_code == 403
    assert "organisation-wide administrator" in response.text
    assert sam_client.get(f"/admin/users/{world.lena.id}").status_code == 200


def test_select_all_matching_touches_only_the_scope(app, world, sam_client):
    response = sam_client.post(
        "/admin/users/bulk",
        data={"action": "approve", "select_all": "matching", "status": "pending"},
    )
    assert response.status_code == 200, response.text
    assert get(app, User, world.lena.id).status == "active"
    assert get(app, User, world.otto.id).status == "pending"


def test_checked_ids_are_each_rechecked_against_the_scope(app, world, sam_client):
    response = sam_client.post(
        "/admin/users/bulk",
        data={"action": "approve", "user_ids": [world.otto.id, world.lena.id]},
    )
    assert response.status_code == 200
    assert "Skipped 1" in response.text
    assert get(app, User, world.lena.id).status == "active"
    assert get(app, User, world.otto.id).status == "pending"


def test_bulk_archive_skips_an_administrator_in_scope(app, world, sam_client):
    sam_client.post(
        "/admin/users/bulk",
        data={"action": "archive_user", "user_ids": [world.ola.id, world.walt.id], "confirm": "1"},
    )
    assert get(app, User, world.ola.id).status == "active"
    assert get(app, User, world.walt.id).status == "archived"


def test_bulk_add_group_outside_the_scope_is_refused(app, world, sam_client):
    response = sam_client.post(
        "/admin/users/bulk",
        data={"action": "add_group", "user_ids": [world.walt.id], "group": world.board.id},
    )
    assert response.status_code == 403
    assert "Board" not in response.text
    assert count(app, user_groups, user_groups.c.group_id == world.board.id) == 1


def test_export_holds_only_the_scope(world, sam_client):
    response = sam_client.get("/admin/users/export.xlsx?status=pending&status=active")
    assert response.status_code == 200
    body = text_of(response)
    assert "lena@example.com" in body and "walt@example.com" in body
    assert "otto@example.com" not in body


def test_dashboard_figures_and_records_are_the_scope(world, sam_client, ada_client):
    mine = sam_client.get("/admin/dashboard").text
    assert "Lisboa" in mine and "Outsider" not in mine
    records = text_of(sam_client.get("/admin/dashboard/records.xlsx"))
    assert "lena@example.com" in records and "otto@example.com" not in records
    assert "otto@example.com" in text_of(ada_client.get("/admin/dashboard/records.xlsx"))


def test_dashboard_people_figures_count_the_scope(app, world):
    from lmsweb import reports

    with app.test_request_context():
        from flask_login import login_user

        login_user(db.session.get(User, world.sam.id))
        counts = reports.users_by_status()
        summary = reports.summary()
    # Lena (pending), Walt and Ola (active): not Otto, Ada or Sam.
    assert counts == {"pending": 1, "active": 2, "archived": 0}
    assert sum(f.assigned for f in summary.courses) == 1  # Lena's record, not Otto's


def test_email_log_and_audit_log_show_only_the_scope(app, world, sam_client):
    with app.app_context():
        from lmsweb import audit

        audit.record(
            "user.update", target=db.session.get(User, world.otto.id), summary="Edited Outsider"
        )
        audit.record(
            "user.update", target=db.session.get(User, world.lena.id), summary="Edited Lisboa"
        )
        db.session.commit()
    outbox = sam_client.get("/admin/outbox").text
    assert "lena@example.com" in outbox and "otto@example.com" not in outbox
    log = sam_client.get("/admin/audit").text
    assert "Edited Lisboa" in log and "Edited Outsider" not in log
    exported = text_of(sam_client.get("/admin/audit/export.xlsx"))
    assert "Edited Lisboa" in exported and "Edited Outsider" not in exported
    # Retrying Otto's failed email is as if it did not exist.
    assert sam_client.post(f"/admin/outbox/{world.otto_email}/retry").status_code == 404


# --- what a scoped administrator may do, inside the scope -----------------------------------


def test_groups_only_from_the_scope_but_the_users_own_may_be_removed(app, world, sam_client):
    refused = sam_client.post(
        f"/admin/users/{world.lena.id}/groups", data={"group": [world.safety.id, world.board.id]}
    )
    assert refused.status_code == 422
    ok = sam_client.post(
        f"/admin/users/{world.lena.id}/groups", data={"group": [world.warehouse.id]}
    )
    assert ok.status_code in (200, 303)
    with app.app_context():
        names = {g.name for g in db.session.get(User, world.lena.id).groups}
    assert names == {"Warehouse"}  # Safety removed, Warehouse added


def test_a_new_user_must_land_in_scope(app, world, sam_client):
    outside = sam_client.post(
        "/admin/users/new",
        data={"first_name": "Mo", "last_name": "Far", "email": "mo@example.com",
              "location": world.madrid.id, "role": "learner"},
    )  # fmt: skip
    assert outside.status_code == 422
    assert "Choose a location or group of your scope" in outside.text
    assert count(app, User, User.email == "mo@example.com") == 0
    inside = sam_client.post(
        "/admin/users/new",
        data={"first_name": "Mo", "last_name": "Near", "email": "mo@example.com",
              "location": world.porto.id, "group": world.warehouse.id, "role": "learner"},
    )  # fmt: skip
    assert inside.status_code == 303, inside.text
    assert count(app, User, User.email == "mo@example.com") == 1


def test_a_scoped_admin_makes_no_administrators(app, world, sam_client):
    response = sam_client.post(
        "/admin/users/new",
        data={"first_name": "Al", "last_name": "Admin", "email": "al@example.com",
              "location": world.lisbon.id, "role": "admin"},
    )  # fmt: skip
    assert response.status_code == 422
    assert count(app, User, User.email == "al@example.com") == 0
    edit = sam_client.post(
        f"/admin/users/{world.walt.id}",
        data={"first_name": "Walt", "last_name": "Worker", "email": "walt@example.com",
              "location": world.porto.id, "group": world.warehouse.id, "role": "admin"},
    )  # fmt: skip
    assert edit.status_code == 422
    assert get(app, User, world.walt.id).role == "learner"


def test_organisation_wide_areas_are_refused(world, sam_client):
    for url in ("/admin/courses", "/admin/locations", "/admin/groups", "/admin/rules",
                "/admin/settings/scim"):  # fmt: skip
        assert sam_client.get(url).status_code == 403, url
    nav = sam_client.get("/admin/users").text
    assert 'href="/admin/courses"' not in nav and 'href="/admin/dashboard"' in nav


def _roster(rows) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.append(["Email", "First name", "Last name", "Location", "Groups", "Role"])
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_import_rows_outside_the_scope_are_errors_in_the_preview(app, world, sam_client):
    data = _roster(
        [
            ["in@example.com", "In", "Side", "Lisbon", "", ""],
            ["out@example.com", "Out", "Side", "Madrid", "", ""],
            ["otto@example.com", "Otto", "Renamed", "", "", ""],
            ["boss@example.com", "Bo", "Ss", "Lisbon", "", "admin"],
        ]
    )
    response = sam_client.post(
        "/admin/users/import",
        data={"file": (io.BytesIO(data), "roster.xlsx")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.text
    with app.app_context():
        job = db.session.scalars(sa.select(ImportJob).order_by(ImportJob.id.desc())).first()
        kinds = [row[0] for row in job.preview["rows"]]
        reasons = [" ".join(row[1]) for row in job.preview["rows"]]
        job_id = job.id
    assert kinds == ["create", "error", "error", "error"]
    assert "Outside your scope" in reasons[1] and "Outside your scope" in reasons[2]
    assert "administrators" in reasons[3]
    sam_client.post(f"/admin/users/import/{job_id}/confirm")
    assert get(app, User, world.otto.id).last_name == "Outsider"
    assert count(app, User, User.email == "in@example.com") == 1
    assert count(app, User, User.email == "out@example.com") == 0


# --- setting the scope ----------------------------------------------------------------------


def test_setting_a_scope_ends_sessions_and_is_audited(app, world, ada_client, sam_client):
    page = ada_client.get(f"/admin/users/{world.sam.id}").text
    assert "Administrator scope" in page and "Lisbon, Warehouse" in page
    version = get(app, User, world.sam.id).session_version
    response = ada_client.post(
        f"/admin/users/{world.sam.id}/scope",
        data={"mode": "scoped", "location": [world.lisbon.id, world.porto.id]},
    )
    assert response.status_code == 303
    assert get(app, User, world.sam.id).session_version == version + 1
    with app.app_context():
        sam = db.session.get(User, world.sam.id)
        assert sam.scope.label == "Lisbon, Porto"
        event = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == "user.scope")
        ).one()
        assert "Lisbon, Warehouse → Lisbon, Porto" in event.summary
    # Sam's session has ended.
    assert sam_client.get("/admin/users").status_code == 303
    # Organisation-wide again.
    ada_client.post(f"/admin/users/{world.sam.id}/scope", data={"mode": "organisation"})
    assert get(app, User, world.sam.id).scope_id is None
    assert count(app, Scope) == 0  # the old scopes went with them


def test_the_scope_form_refuses_learners_nothing_and_oneself(app, world, ada_client):
    assert (
        ada_client.post(
            f"/admin/users/{world.lena.id}/scope", data={"mode": "organisation"}
        ).status_code
        == 303
    )  # plain request: refused with a flash, back to the page
    assert get(app, User, world.lena.id).scope_id is None
    empty = ada_client.post(
        f"/admin/users/{world.sam.id}/scope", data={"mode": "scoped"}, headers=HX
    )
    assert empty.status_code == 422
    assert "at least one location or group" in empty.text
    own = ada_client.post(
        f"/admin/users/{world.ada.id}/scope",
        data={"mode": "scoped", "location": world.lisbon.id},
        headers=HX,
    )
    assert own.status_code == 409
    assert get(app, User, world.ada.id).scope_id is None
    # The form is not offered for learners.
    assert "Administrator scope" not in ada_client.get(f"/admin/users/{world.lena.id}").text


def test_a_location_in_a_scope_cannot_be_removed(app, world, make, ada_client):
    spare = make.location("Faro")
    scope_admin(app, world.ola, [spare])
    response = ada_client.post(f"/admin/locations/{spare.id}/remove", headers=HX)
    assert response.status_code == 409
    assert "in a scope" in response.text
    assert count(app, Location, Location.id == spare.id) == 1


def test_create_admin_with_a_scope(app, world, runner):
    result = runner.invoke(
        args=["lms", "create-admin", "--email", "site@example.com", "--password", "long-enough",
              "--location", "lisbon", "--group", "Warehouse"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Lisbon, Warehouse" in result.output
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email == "site@example.com"))
        assert user.role == "admin" and user.scope.label == "Lisbon, Warehouse"


def test_create_admin_with_an_unknown_name_creates_nothing(app, world, runner):
    result = runner.invoke(
        args=["lms", "create-admin", "--email", "x@example.com", "--password", "long-enough",
              "--location", "Atlantis"],
    )  # fmt: skip
    assert result.exit_code != 0
    assert "Atlantis" in result.output
    assert count(app, User, User.email == "x@example.com") == 0


def test_the_weekly_digest_is_for_organisation_wide_administrators(app, world, sam_client, runner):
    """It holds the organisation's figures: a scoped administrator neither subscribes nor
    gets it (even subscribed before being scoped)."""
    assert "digest-form" not in sam_client.get("/admin/dashboard").text
    assert sam_client.post("/admin/dashboard/digest", data={"digest": "on"}).status_code == 403
    with app.app_context():
        for user_id in (world.sam.id, world.ada.id):
            db.session.get(User, user_id).wants_digest = True
        db.session.commit()
    result = runner.invoke(args=["lms", "worker", "--once", "--now", "2026-03-02T07:00"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        recipients = db.session.scalars(
            sa.select(OutboundEmail.recipient).where(OutboundEmail.kind == "digest")
        ).all()
    assert recipients == [world.ada.email]


def test_an_assignment_id_is_resolved_through_its_reached_user(app, world, sam_client):
    """Otto's record named on Lena's (in-scope) URL is not found, and stays as it was."""
    before = snapshot(app)
    for action in ("unassign", "archive_activity"):
        response = sam_client.post(
            f"/admin/users/{world.lena.id}/courses",
            data={"action": action, "assignment": world.otto_assignment.id},
            headers=HX,
        )
        assert response.status_code in (404, 409, 422), response.status_code
        assert "Outsider" not in response.text
    assert snapshot(app) == before


def test_a_scoped_admin_is_offered_no_actions_on_an_administrators_row(app, world, sam_client):
    """Ola (an administrator at Lisbon) is listed, but every action on her answers 403 for
    Sam: her row offers none (nor polls her invitation), while Lena's row keeps its own."""
    with app.app_context():
        from lmsweb.notifications import queue_invitation

        queue_invitation(db.session.get(User, world.ola.id))
        db.session.commit()
    page = sam_client.get("/admin/users?status=pending&status=active", headers=HX).text
    ola_row = page.split(f'id="user-{world.ola.id}"', 1)[1].split("</tr>", 1)[0]
    lena_row = page.split(f'id="user-{world.lena.id}"', 1)[1].split("</tr>", 1)[0]
    assert f'id="more-{world.lena.id}"' in lena_row and "approve" in lena_row
    assert "data-menu" not in ola_row and "row-post" not in ola_row
    assert "invite-status" not in ola_row
    assert "organisation-wide administrators" in ola_row


# --- the scoped list at scale (#17) ----------------------------------------------------------


def _crowd(make, world: World) -> None:
    """People in the scope every way (its location, its group elsewhere or nowhere, both),
    archived ones, and people outside it, with names interleaved along the order."""
    places = [world.lisbon, world.porto, world.madrid, None]
    for n in range(150):
        place = places[n % 4]
        make.user(
            first_name=f"Crowd{(n * 37) % 150:03d}",
            last_name=f"Member{n % 7}",
            location_id=place.id if place else None,
            groups=[world.warehouse] if n % 3 == 0 else [world.safety] if n % 3 == 1 else [],
            status="archived" if n % 11 == 0 else "active",
        )


def _ids_in_scope(app, world: World) -> set[int]:
    with app.app_context():
        rule = scope.rule_for(db.session.get(User, world.sam.id).scope_id)
        return set(db.session.scalars(sa.select(User.id).where(scope.user_condition(rule))))


def test_the_scope_read_from_scope_members_is_the_scope_defined(app, world, make):
    """The scope's stored members (scope_members, kept by triggers) are exactly the users
    its definition reaches: its locations' users and its groups' members."""
    _crowd(make, world)
    with app.app_context():
        rule = scope.rule_for(db.session.get(User, world.sam.id).scope_id)
        assert rule.scope_id is not None
        defined = set(db.session.scalars(sa.select(User.id).where(scope.defined_condition(rule))))
    assert len(defined) > 20
    assert _ids_in_scope(app, world) == defined


@pytest.mark.parametrize("sort", ["name", "-name", "email", "location"])
def test_a_scoped_list_past_the_cap_pages_through_exactly_its_people(
    app, world, make, sam_client, monkeypatch, sort
):
    """Past the count's cap the scoped list walks the sort order testing the scope row by
    row; its count adds the scope's parts. Every page holds the rows of the one ordering,
    the count is "more than" the cap until a page needs it exact, and a page past the end
    is the last one."""
    import re

    from werkzeug.datastructures import MultiDict

    from lmsweb.blueprints.users import listing
    from lmsweb.user_queries import UserFilters, filtered_users, ordered

    monkeypatch.setattr(listing, "COUNT_CAP", 5)
    _crowd(make, world)
    query = f"sort={sort}&per_page=25"
    with app.app_context():
        filters = UserFilters.from_args(MultiDict([("sort", sort)]))
        everyone = list(
            db.session.scalars(ordered(filtered_users(filters).with_only_columns(User.id), sort))
        )
    in_scope = _ids_in_scope(app, world)
    with app.app_context():
        archived = set(db.session.scalars(sa.select(User.id).where(User.status == "archived")))
    expected = [i for i in everyone if i in in_scope and i not in archived]
    assert len(expected) > 50
    first = sam_client.get(f"/admin/users?{query}", headers=HX).text
    assert re.search(r'id="users-count"[^>]*>More than 5 users<', first)
    shown = []
    for page in range(1, len(expected) // 25 + 2):
        shown += [
            int(i)
            for i in re.findall(
                r'<tr id="user-(\d+)"',
                sam_client.get(f"/admin/users?{query}&page={page}", headers=HX).text,
            )
        ]
    assert shown == expected
    past = sam_client.get(f"/admin/users?{query}&page=40", headers=HX).text
    count = re.search(r'id="users-count"[^>]*>([\d,]+) users<', past)
    assert count and int(count.group(1)) == len(expected)
    assert [int(i) for i in re.findall(r'<tr id="user-(\d+)"', past)] == expected[
        (len(expected) - 1) // 25 * 25 :
    ]
