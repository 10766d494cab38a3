"""The dashboard: figures at a glance, the training records, their filters and export."""

from __future__ import annotations

import io
import re
from collections import Counter
from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from lmsweb import licensing, reports
from lmsweb.extensions import db
from lmsweb.models import Course, CourseAssignment, User
from lmsweb.seed import seed_demo
from tests.conftest import HX


@pytest.fixture
def org(app, make):
    """Two courses, two locations, a group, records in every state (one overdue, one archived)."""
    lisbon, oslo = make.location("Lisbon"), make.location("Oslo")
    sales = make.group("Sales")
    gdpr, fire = make.course(code="GDPR-1", seats=10), make.course(code="FIRE-2", seats=4)
    ana = make.user(first_name="Ana", last_name="Alves", location_id=lisbon.id, groups=[sales])
    bo = make.user(first_name="Bo", last_name="Berg", location_id=oslo.id)
    cy = make.user(first_name="Cy", last_name="Cole", location_id=oslo.id, status="pending")
    records = {
        "ana_gdpr": make.assignment(ana, gdpr, due=date.today() - timedelta(days=3)),
        "ana_fire": make.assignment(ana, fire, state="completed"),
        "bo_gdpr": make.assignment(bo, gdpr, state="in_progress", due=date.today() + timedelta(5)),
        "bo_fire": make.assignment(bo, fire),
    }
    with app.app_context():
        licensing.archive_activity(db.session.get(CourseAssignment, records["bo_fire"].id))
        db.session.commit()
    return {
        "ana": ana,
        "bo": bo,
        "cy": cy,
        "gdpr": gdpr,
        "fire": fire,
        "lisbon": lisbon,
        "oslo": oslo,
        "sales": sales,
        **records,
    }


def record_ids(html: str) -> set[int]:
    return {int(n) for n in re.findall(r'<tr id="record-(\d+)"', html)}


def number(html: str, element_id: str) -> int:
    match = re.search(rf'id="{element_id}"[^>]*>\s*(\d+)', html)
    assert match, element_id
    return int(match.group(1))


def test_full_page_and_records_fragment(admin_client, org, admin):
    page = admin_client.get("/admin/dashboard")
    assert page.status_code == 200
    html = page.text
    assert "<h1>Dashboard</h1>" in html and 'aria-current="page"' in html
    assert 'style="' not in html and "<script>" not in html
    assert number(html, "dash-overdue") == 1 and number(html, "dash-due-soon") == 1
    users = html.split('id="dash-users"')[1].split("</section>")[0]
    assert re.search(r'id="dash-users-active">.*?<td class="num" data-count>3<', users, re.S)
    assert re.search(r'id="dash-users-pending">.*?<td class="num" data-count>1<', users, re.S)
    pool = html.split(f'id="pool-{org["fire"].id}"')[1].split("</tr>")[0]
    # FIRE-2: 4 seats; Ana completed (used), Bo's unstarted record was archived (returned).
    assert 'data-field="total">4<' in pool and 'data-field="used">1<' in pool
    assert 'data-field="reserved">0<' in pool and 'data-field="available">3<' in pool
    assert 'data-field="completion">100%<' in pool
    assert "<meter" in pool
    assert record_ids(html) == {org[k].id for k in ("ana_gdpr", "ana_fire", "bo_gdpr", "bo_fire")}
    archived_row = html.split(f'id="record-{org["bo_fire"].id}"')[1].split("</tr>")[0]
    assert "badge--archived" in archived_row and "course activity archived" in archived_row
    fragment = admin_client.get(
        "/admin/dashboard?archived=yes", headers={**HX, "HX-Target": "records"}
    )
    assert "HX-Request" in fragment.headers["Vary"]
    assert "<h1>" not in fragment.text and "dash-pools" not in fragment.text
    assert record_ids(fragment.text) == {org["bo_fire"].id}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("state=not_started", {"ana_gdpr", "bo_fire"}),
        ("state=in_progress", {"bo_gdpr"}),
        ("state=completed", {"ana_fire"}),
        ("state=overdue", {"ana_gdpr"}),
        ("archived=yes", {"bo_fire"}),
        ("archived=no", {"ana_gdpr", "ana_fire", "bo_gdpr"}),
        ("q=berg", {"bo_gdpr", "bo_fire"}),
        ("q=ALVES", {"ana_gdpr", "ana_fire"}),
        ("state=not_started&archived=no", {"ana_gdpr"}),
    ],
)
def test_record_filters(admin_client, org, query, expected):
    html = admin_client.get(f"/admin/dashboard?{query}", headers=HX).text
    assert record_ids(html) == {org[k].id for k in expected}


@pytest.mark.parametrize("q", ["berg", "ALVES", "b", "an al", "ana bo", "erg@", "zzz"])
def test_a_records_search_is_the_users_search_read_from_its_index(app, admin_client, org, q):
    """Records filtered by a search belong to the users the Users list's search finds (any
    status), tested against the search's own ids: on SQLite the FTS5 table's, with no lookup
    in `users` (each match was read there first: 45 ms for "son" at a million users)."""
    from werkzeug.datastructures import MultiDict

    from lmsweb.user_queries import UserFilters, filtered_users

    from .conftest import IS_POSTGRES
    from .test_query_plans import captured

    with app.app_context():
        filters = UserFilters.from_args(MultiDict({"q": q}))
        filters.status = []  # every status
        users = set(db.session.scalars(filtered_users(filters).with_only_columns(User.id)))
        expected = set(
            db.session.scalars(
                sa.select(CourseAssignment.id).where(CourseAssignment.user_id.in_(users))
            )
        )
        seen = captured(app, lambda: admin_client.get(f"/admin/dashboard?q={q}", headers=HX))
    html = admin_client.get(f"/admin/dashboard?q={q}", headers=HX).text
    assert record_ids(html) == expected
    records = [s for s, _ in seen if "FROM course_assignments" in s and "LIMIT" in s]
    assert len(records) == 2  # the count, the page
    if not IS_POSTGRES and len(q.split()[0]) >= 3 and " " not in q:
        assert all(not re.search(r"\bFROM users\b", s) for s in records), records


def test_records_of_a_location_and_a_group_look_each_person_up_in_the_group(
    app, admin_client, org, make
):
    """The records of a location's people in a group: each person of the location is looked
    up in the group (a join). SQLite listed every member of the group first and looked each
    up at the location (Sales at a million users: 84,000 members for 3,468 people at Berlin;
    the count and the page 90 and 75 ms)."""
    from .conftest import IS_POSTGRES
    from .test_query_plans import captured

    dan = make.user(first_name="Dan", last_name="Diaz", location_id=org["lisbon"].id)
    eve = make.user(
        first_name="Eve", last_name="Ens", location_id=org["oslo"].id, groups=[org["sales"]]
    )
    make.assignment(dan, org["gdpr"])  # at the location, not in the group
    make.assignment(eve, org["gdpr"])  # in the group, elsewhere
    query = f"location={org['lisbon'].id}&group={org['sales'].id}"
    with app.app_context():
        seen = captured(app, lambda: admin_client.get(f"/admin/dashboard?{query}", headers=HX))
        records = [(s, p) for s, p in seen if "FROM course_assignments" in s and "LIMIT" in s]
        assert len(records) == 2  # the count, the page
        if not IS_POSTGRES:
            for statement, parameters in records:
                plan = " ".join(
                    row[-1]
                    for row in db.session.connection().exec_driver_sql(
                        f"EXPLAIN QUERY PLAN {statement}", parameters
                    )
                )
                assert "(group_id=?)" not in plan, plan
    html = admin_client.get(f"/admin/dashboard?{query}", headers=HX).text
    assert record_ids(html) == {org["ana_gdpr"].id, org["ana_fire"].id}


@pytest.mark.parametrize("walk_min", [10_000, 1])
def test_a_groups_records_past_the_cap_are_found_walking_the_records(
    app, admin_client, org, make, monkeypatch, walk_min
):
    """Past the count's cap, a page of a group's (or a location's) records is looked for in a
    walk of the records newest first, each tested for its person: SQLite read and sorted
    every record of the group's members (115,000 for 84,000 members at a million users). A
    walk too short for the page (`walk_min` 1) falls back to that. The same records either
    way, page after page."""
    from .test_query_plans import captured

    monkeypatch.setattr(reports, "COUNT_CAP", 2)
    monkeypatch.setattr(reports, "PER_PAGE", 2)
    monkeypatch.setattr(reports, "RECORD_WALK_RATIO", 1)
    monkeypatch.setattr(reports, "RECORD_WALK_MIN", walk_min)
    for n in range(3):
        member = make.user(first_name=f"M{n}", last_name="Member", groups=[org["sales"]])
        make.assignment(member, org["gdpr"])
        make.assignment(make.user(first_name=f"O{n}", last_name="Other"), org["gdpr"])
    with app.app_context():
        members = sa.select(sa.literal_column("user_id")).select_from(sa.table("user_groups"))
        members = members.where(sa.literal_column("group_id") == org["sales"].id)
        expected = list(
            db.session.scalars(
                sa.select(CourseAssignment.id)
                .where(CourseAssignment.user_id.in_(members))
                .order_by(CourseAssignment.id.desc())
            )
        )
    assert len(expected) == 5
    shown = []
    for page in (1, 2, 3):
        url = f"/admin/dashboard?group={org['sales'].id}&page={page}"
        with app.app_context():
            seen = captured(app, lambda url=url: admin_client.get(url, headers=HX))
        walked = [s for s, _ in seen if "EXISTS" in s and "coalesce(" in s]
        listed = [s for s, _ in seen if "ORDER BY course_assignments.id DESC" in s]
        listed = [s for s in listed if "LIMIT" in s and s not in walked and "count(" not in s]
        assert len(walked) == 1, (page, walked)
        # The last page (one record, fewer than asked) is read from the list, as is any page
        # when the walk is too short.
        assert len(listed) == (0 if page < 3 and walk_min > 1 else 1), (page, listed)
        ids = sorted(record_ids(admin_client.get(url, headers=HX).text), reverse=True)
        shown += ids
    assert shown == expected


def test_record_filters_by_course_location_and_group(admin_client, org):
    def ids(query):
        return record_ids(admin_client.get(f"/admin/dashboard?{query}", headers=HX).text)

    assert ids(f"course={org['fire'].id}") == {org["ana_fire"].id, org["bo_fire"].id}
    assert ids(f"location={org['oslo'].id}") == {org["bo_gdpr"].id, org["bo_fire"].id}
    assert ids(f"group={org['sales'].id}") == {org["ana_gdpr"].id, org["ana_fire"].id}
    assert ids(f"group={org['sales'].id}&course={org['gdpr'].id}") == {org["ana_gdpr"].id}


def test_invalid_filters_are_refused_with_422(admin_client, org):
    response = admin_client.get("/admin/dashboard?state=lost&course=abc")
    assert response.status_code == 422
    assert "Those filters are not valid" in response.text
    assert admin_client.get("/admin/dashboard.xlsx").status_code == 404
    export = admin_client.get("/admin/dashboard/records.xlsx?state=lost")
    assert export.status_code == 422 and export.mimetype == "text/plain"


def test_paging_keeps_every_filter_in_the_url(app, admin_client, make):
    course = make.course(code="BIG", seats=200)
    for _ in range(60):
        make.assignment(make.user(last_name="Paged"), course)
    page1 = admin_client.get(f"/admin/dashboard?course={course.id}&q=paged").text
    assert "60 training records" in page1 and len(record_ids(page1)) == 50
    link = re.search(r'rel="next" href="([^"]+)"', page1).group(1).replace("&amp;", "&")
    assert f"course={course.id}" in link and "q=paged" in link and "page=2" in link
    assert len(record_ids(admin_client.get(link).text)) == 10


def test_export_uses_the_same_filters(admin_client, org):
    response = admin_client.get("/admin/dashboard/records.xlsx?archived=yes")
    assert response.status_code == 200
    assert response.mimetype.endswith("spreadsheetml.sheet")
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(load_workbook(io.BytesIO(response.data)).active.iter_rows(values_only=True))
    assert rows[0][:3] == ("Last name", "First name", "Email")
    assert len(rows) == 2
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["Last name"] == "Berg" and row["Course code"] == "FIRE-2"
    assert row["Archive reason"] == "Course activity archived" and row["Archived"] is not None
    everything = admin_client.get("/admin/dashboard/records.xlsx?state=overdue")
    rows = list(load_workbook(io.BytesIO(everything.data)).active.iter_rows(values_only=True))
    assert [r[0] for r in rows[1:]] == ["Alves"] and rows[1][14] == "yes"
    page = admin_client.get("/admin/dashboard?state=overdue&archived=no").text
    assert "/admin/dashboard/records.xlsx?state=overdue&amp;archived=no" in page


def test_export_writes_user_text_as_text(admin_client, make):
    user = make.user(first_name='=HYPERLINK("x")', last_name="@evil")
    make.assignment(user, make.course(code="C-X", seats=1))
    data = admin_client.get("/admin/dashboard/records.xlsx").data
    sheet = load_workbook(io.BytesIO(data)).active
    assert sheet["A2"].data_type == "s" and sheet["A2"].value == "@evil"
    assert sheet["B2"].data_type == "s"


def test_records_page_query_count_does_not_grow_with_rows(app, admin_client, make):
    course = make.course(code="Q", seats=100)
    for _ in range(3):
        make.assignment(make.user(), course)

    def queries():
        statements = []
        with app.app_context():
            engine = db.engine

        def on_execute(*args):
            statements.append(args[2])

        sa.event.listen(engine, "before_cursor_execute", on_execute)
        try:
            assert admin_client.get("/admin/dashboard").status_code == 200
        finally:
            sa.event.remove(engine, "before_cursor_execute", on_execute)
        return len(statements)

    small = queries()
    for _ in range(20):
        make.assignment(make.user(location_id=make.location().id), course)
    assert queries() == small


def test_dashboard_numbers_agree_with_direct_counts_on_10000_users(app, admin_client):
    with app.app_context():
        seed_demo(10_000)
        db.session.commit()
        users = Counter(db.session.scalars(sa.select(User.status)))
        records = db.session.execute(
            sa.select(
                CourseAssignment.course_id,
                CourseAssignment.state,
                CourseAssignment.due_date,
                CourseAssignment.archived_at,
            )
        ).all()
        courses = {
            c.id: (c.code, c.seats_total, c.seats_reserved, c.seats_used)
            for c in db.session.scalars(sa.select(Course))
        }
        assert licensing.pool_drift() == []
    today = reports.today()
    soon = today + timedelta(days=reports.DUE_SOON_DAYS)
    current = [r for r in records if r.archived_at is None]
    open_ = [r for r in current if r.state != "completed"]
    overdue = Counter(r.course_id for r in open_ if r.due_date < today)
    due_soon = Counter(r.course_id for r in open_ if today <= r.due_date <= soon)
    assigned = Counter(r.course_id for r in current)
    completed = Counter(r.course_id for r in current if r.state == "completed")
    assert sum(users.values()) == 10_001  # and the signed-in admin

    html = admin_client.get("/admin/dashboard").text
    for status in ("pending", "active", "archived"):
        expected = users[status]
        row = html.split(f'id="dash-users-{status}"')[1].split("</tr>")[0]
        assert f"data-count>{expected}<" in row
    assert number(html, "dash-overdue") == sum(overdue.values())
    assert number(html, "dash-due-soon") == sum(due_soon.values())
    for course_id, (_code, total, reserved, used) in courses.items():
        row = html.split(f'id="pool-{course_id}"')[1].split("</tr>")[0]
        assert f'data-field="total">{total}<' in row
        assert f'data-field="reserved">{reserved}<' in row
        assert f'data-field="used">{used}<' in row
        assert f'data-field="available">{total - reserved - used}<' in row
        rate = round(100 * completed[course_id] / assigned[course_id])
        assert f'data-field="completion">{rate}%<' in row
        assert f"({completed[course_id]}/{assigned[course_id]})" in row
        assert re.search(rf'data-field="overdue">(<a [^>]+>)?{overdue[course_id]}<', row)
        assert f'data-field="due_soon">{due_soon[course_id]}<' in row
    assert len(records) > reports.COUNT_CAP and "More than 10,000 training records" in html
    archived = sum(1 for r in records if r.archived_at is not None)
    assert f"{archived} training records" in admin_client.get("/admin/dashboard?archived=yes").text
    overdue_page = admin_client.get("/admin/dashboard?state=overdue").text
    assert f"{sum(overdue.values())} training records" in overdue_page


def test_the_last_records_page_offers_no_next_page(admin_client, make):
    course = make.course(code="BIG", seats=200)
    for _ in range(51):
        make.assignment(make.user(), course)
    first = admin_client.get("/admin/dashboard", headers=HX).text
    assert 'rel="next"' in first and 'rel="prev"' not in first
    last = admin_client.get("/admin/dashboard?page=2", headers=HX).text
    assert len(record_ids(last)) == 1 and 'rel="next"' not in last and 'rel="prev"' in last


def test_records_are_counted_up_to_a_cap(admin_client, make, monkeypatch):
    monkeypatch.setattr(reports, "COUNT_CAP", 3)
    course = make.course(code="BIG", seats=200)
    people = [make.user(last_name=f"Capped{n}") for n in range(5)]
    made = [make.assignment(person, course) for person in people]
    page = admin_client.get("/admin/dashboard", headers=HX).text
    assert "More than 3 training records" in page and "Page 1 of" not in page
    assert record_ids(page) == {a.id for a in made}  # 5 fit on the first page of 50
    exact = admin_client.get("/admin/dashboard?q=capped1", headers=HX).text
    assert "1 training record<" in exact
    monkeypatch.setattr(reports, "PER_PAGE", 2)
    deep = admin_client.get("/admin/dashboard?page=2", headers=HX).text
    assert 'rel="next"' in deep and 'rel="prev"' in deep and "Page 2<" in deep


def test_a_scoped_records_page_tests_each_record_and_walks_the_newest_first(app, make):
    """A scoped administrator's records are those of people at the scope's locations or in
    its groups (wherever they are), newest first, page after page; each record is tested on
    its own (the person's row, one membership probe), so SQLite walks the records' key
    backwards for a page and never lists or sorts every record of the scope first (the set
    form took 150 ms a page at a million users)."""
    from flask_login import login_user

    from lmsweb import scope

    home, away = make.location("Home"), make.location("Away")
    crew, other = make.group("Crew"), make.group("Other")
    sam = make.admin(email="sam.scoped@example.com")
    with app.app_context():
        scope.set_scope(
            db.session.get(User, sam.id),
            [db.session.get(type(home), home.id)],
            [db.session.get(type(crew), crew.id)],
        )
        db.session.commit()
    people = [
        make.user(location_id=home.id),  # in scope: the location
        make.user(location_id=away.id, groups=[crew]),  # in scope: the group, elsewhere
        make.user(groups=[crew]),  # in scope: the group, no location
        make.user(location_id=away.id, groups=[other]),  # out
        make.user(),  # out
    ]
    courses = [make.course(code=f"SC-{n}", seats=20) for n in range(3)]
    records = [make.assignment(p, c) for c in courses for p in people]
    mine = sorted((r.id for r in records if r.user_id in {p.id for p in people[:3]}), reverse=True)
    with app.test_request_context():
        login_user(db.session.get(User, sam.id))
        shown = []
        for page in (1, 2, 3, 4):
            result = reports.records_page(reports.RecordFilters(page=page), per_page=3)
            shown += [r.id for r in result.items]
            assert result.total == len(mine)
        assert shown == mine
        if db.session.get_bind().dialect.name == "sqlite":
            seen: list[tuple[str, tuple]] = []

            def record(_conn, _cursor, statement, parameters, _context, _many):
                seen.append((statement, parameters))

            sa.event.listen(db.engine, "before_cursor_execute", record)
            try:
                reports.records_page(reports.RecordFilters(), per_page=3)
            finally:
                sa.event.remove(db.engine, "before_cursor_execute", record)
            newest_first = "ORDER BY course_assignments.id DESC"
            ((statement, parameters),) = [
                (s, p)
                for s, p in seen
                if newest_first in s and "count" not in s and "JOIN" not in s
            ]
            plan = " ".join(
                row[-1]
                for row in db.session.connection().exec_driver_sql(
                    f"EXPLAIN QUERY PLAN {statement}", parameters
                )
            )
            assert "CORRELATED" in plan and "TEMP B-TREE" not in plan, plan
            assert "LIST SUBQUERY" not in plan, plan


def test_no_records_at_all_says_so_and_only_filters_matching_nothing_blame_the_filters(
    admin_client, make
):
    """With no training record and no filter, the records said "No training records match
    these filters", blaming filters nobody had set."""
    page = admin_client.get("/admin/dashboard")
    assert page.status_code == 200
    assert "No training records yet" in page.text
    assert "match these filters" not in page.text
    make.course("SAFE-1", seats=1)
    filtered = admin_client.get("/admin/dashboard?state=overdue", headers=HX)
    assert filtered.status_code == 200
    assert "No training records match these filters" in filtered.text
