"""Export Users to Excel: opens in openpyxl and calamine, the rows are the filtered users."""

from __future__ import annotations

import io
from datetime import date, datetime

import pytest
from openpyxl import load_workbook
from python_calamine import CalamineWorkbook

from lmsweb import roster_export
from lmsweb.extensions import db
from lmsweb.models import User
from lmsweb.user_queries import UserFilters, filtered_users
from tests.conftest import HX

URL = "/admin/users/export.xlsx"
EVIL = '=HYPERLINK("http://x","y")'


@pytest.fixture
def roster(make):
    north, south = make.location("North"), make.location("South")
    drivers, office = make.group("Drivers"), make.group("Office")
    course = make.course("FIRE", seats=10)
    ann = make.user(
        first_name="Ann",
        last_name="Alpha",
        email="ann@example.com",
        employee_id="007",
        location_id=north.id,
        groups=[office, drivers],
        approved_at=datetime(2026, 3, 4, 10, 30),
    )
    make.assignment(ann, course, state="completed")
    make.assignment(ann, make.course("AID", seats=1))
    evil = make.user(
        first_name=EVIL,
        last_name="-2+3",
        email="evil@example.com",
        location_id=south.id,
        groups=[make.group("Zeta, the last")],
    )
    pending = make.user(first_name="Pat", last_name="Pending", status="pending")
    archived = make.user(first_name="Arch", last_name="Ived", status="archived")
    return {"ann": ann, "evil": evil, "pending": pending, "archived": archived, "north": north}


def download(client, query=""):
    response = client.get(URL + query)
    assert response.status_code == 200, response.text
    assert response.mimetype == roster_export_mimetype()
    return response


def roster_export_mimetype():
    return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def rows_openpyxl(data: bytes):
    sheet = load_workbook(io.BytesIO(data)).active
    return sheet, [list(r) for r in sheet.iter_rows(values_only=True)]


def test_default_export_is_the_active_users(admin_client, roster):
    response = download(admin_client)
    disposition = response.headers["Content-Disposition"]
    assert f"users-{date.today().isoformat()}.xlsx" in disposition
    sheet, rows = rows_openpyxl(response.data)
    assert rows[0] == list(roster_export.HEADERS)
    names = {(r[0], r[1]) for r in rows[1:]}
    # Active only: the signed-in admin, Ann, and the one with a formula for a name.
    assert names == {("Ada", "Admin"), ("Ann", "Alpha"), (EVIL, "-2+3")}
    assert len(rows) == 4
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:M4"


def test_cells_are_typed_and_safe(admin_client, roster):
    sheet, rows = rows_openpyxl(download(admin_client).data)
    ann = next(r for r in rows if r[0] == "Ann")
    ann_row = rows.index(ann) + 1
    evil_row = next(i for i, r in enumerate(rows, start=1) if r[0] == EVIL)
    assert ann[:8] == [
        "Ann",
        "Alpha",
        "ann@example.com",
        "007",
        "North",
        "Drivers, Office",
        "Learner",
        "Active",
    ]
    assert ann[8] == datetime(2026, 3, 4)  # a real date cell
    assert sheet.cell(row=ann_row, column=9).is_date
    assert ann[11:] == [2, 1]  # assigned, completed
    user_id_cell = sheet.cell(row=ann_row, column=4)
    assert user_id_cell.data_type == "s"
    evil = sheet.cell(row=evil_row, column=1)
    assert evil.value == EVIL and evil.data_type == "s"
    assert sheet.cell(row=evil_row, column=2).value == "-2+3"
    assert sheet.cell(row=evil_row, column=6).value == "Zeta, the last"  # only their groups
    assert sheet.cell(row=evil_row, column=2).data_type == "s"


def test_formula_text_stays_a_plain_string_in_the_raw_xml(admin_client, roster):
    import zipfile

    data = download(admin_client).data
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        xml = archive.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in xml and "<f " not in xml
    assert 'quotePrefix="1"' in archive_styles(data)


def archive_styles(data: bytes) -> str:
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.read("xl/styles.xml").decode()


def test_opens_with_calamine(admin_client, roster):
    data = download(admin_client, "?status=pending&status=active&status=archived").data
    sheet = CalamineWorkbook.from_filelike(io.BytesIO(data)).get_sheet_by_index(0)
    rows = sheet.to_python()
    assert rows[0] == list(roster_export.HEADERS)
    names = sorted(r[0] for r in rows[1:])
    assert names == sorted(["Ada", "Ann", EVIL, "Pat", "Arch"])
    evil = next(r for r in rows if r[1] == "-2+3")
    assert evil[0] == EVIL  # a string, not a formula result
    ann = next(r for r in rows if r[0] == "Ann")
    assert ann[3] == "007" and ann[8] == date(2026, 3, 4)


def test_rows_equal_the_filtered_users(admin_client, app, roster):
    north = roster["north"].id
    _, rows = rows_openpyxl(download(admin_client, f"?location={north}").data)
    assert [r[0] for r in rows[1:]] == ["Ann"]
    _, rows = rows_openpyxl(download(admin_client, "?status=archived").data)
    assert [r[0] for r in rows[1:]] == ["Arch"]
    _, rows = rows_openpyxl(download(admin_client, "?q=alpha&status=active").data)
    assert [r[1] for r in rows[1:]] == ["Alpha"]
    with app.app_context():
        filters = UserFilters(status=["pending", "active", "archived"])
        expected = db.session.scalar(
            db.select(db.func.count()).select_from(filtered_users(filters).subquery())
        )
    _, rows = rows_openpyxl(
        download(admin_client, "?status=pending&status=active&status=archived").data
    )
    assert len(rows) - 1 == expected == 5


def test_export_of_selected_ids(admin_client, roster):
    ids = f"?user_ids={roster['pending'].id}&user_ids={roster['archived'].id}"
    _, rows = rows_openpyxl(download(admin_client, ids).data)
    assert sorted(r[0] for r in rows[1:]) == ["Arch", "Pat"]


def test_export_is_for_administrators_only(client, learner_client, roster):
    assert learner_client.get(URL).status_code == 403
    assert client.get(URL).status_code == 303
    assert client.get(URL, headers=HX).status_code == 401


def test_export_queries_are_a_fixed_few(admin_client, app, roster):
    from sqlalchemy import event

    statements = []
    # Every sheet written here, so that this process sees every statement (the records'
    # sheet is otherwise written by a process of its own: see test_export_internals.py).
    app.config["EXPORT_SHEET_PROCESSES"] = False
    with app.app_context():
        engine = db.engine

        def count_select(conn, cursor, statement, *args):
            if statement.lstrip().upper().startswith("SELECT"):
                statements.append(statement)

        event.listen(engine, "before_cursor_execute", count_select)
        try:
            out = io.BytesIO()
            written = roster_export.write_users(out, filtered_users(UserFilters()))
        finally:
            event.remove(engine, "before_cursor_execute", count_select)
    assert written == 4
    # A fixed number whatever the number of users: the group names, then one query a sheet.
    assert len(statements) == 3


def sheet_values(data: bytes, title: str) -> list[list]:
    sheet = load_workbook(io.BytesIO(data))[title]
    return [list(r) for r in sheet.iter_rows(values_only=True)]


def day(value):
    return datetime.combine(value, datetime.min.time()) if value is not None else None


def test_second_sheet_has_one_row_per_assignment_as_in_the_database(app, admin_client, make):
    """The Assignments sheet holds every training record of the exported users (archived
    ones too), in the users' order, with real date cells, checked against the database."""
    from sqlalchemy import select

    from lmsweb import licensing
    from lmsweb.models import Course, CourseAssignment

    fire = make.course("FIRE", title="Fire safety", seats=10)
    evil = make.course("EVIL", title='=HYPERLINK("http://x","y")', seats=10)
    aid = make.course("AID", title="First aid", seats=10)
    ann = make.user(first_name="Ann", last_name="Alpha", email="ann@example.com")
    bob = make.user(first_name="Bob", last_name="Beta", email="bob@example.com")
    make.user(first_name="Pat", last_name="Pending", status="pending")
    make.assignment(ann, fire, state="completed")
    make.assignment(ann, evil, due=date(2020, 1, 1))  # overdue
    make.assignment(bob, aid, state="in_progress")
    archived = make.assignment(bob, fire)
    with app.app_context():
        licensing.unassign(db.session.get(CourseAssignment, archived.id))
        db.session.commit()
    response = download(admin_client, "?status=pending&status=active&status=archived")
    workbook = load_workbook(io.BytesIO(response.data))
    assert workbook.sheetnames == ["Users", "Assignments"]
    rows = sheet_values(response.data, "Assignments")
    assert rows[0] == list(roster_export.ASSIGNMENT_HEADERS)
    with app.app_context():
        expected = [
            [
                u.last_name,
                u.first_name,
                u.email,
                u.employee_id,
                c.code,
                c.title,
                roster_export.STATE_LABELS[a.state],
                "yes"
                if a.archived_at is None and a.state != "completed" and a.due_date < date.today()
                else "no",
                day(a.assigned_at.date()),
                day(a.due_date),
                day(a.started_at and a.started_at.date()),
                day(a.completed_at and a.completed_at.date()),
                day(a.archived_at and a.archived_at.date()),
            ]
            for a, u, c in db.session.execute(
                select(CourseAssignment, User, Course)
                .join(User, User.id == CourseAssignment.user_id)
                .join(Course, Course.id == CourseAssignment.course_id)
                .order_by(User.last_name, User.first_name, User.id, Course.code)
            )
        ]
    assert rows[1:] == expected
    assert len(expected) == 4
    assert [r[4] for r in rows[1:]] == ["EVIL", "FIRE", "AID", "FIRE"]
    assert [r[7] for r in rows[1:]] == ["yes", "no", "no", "no"]  # EVIL is overdue
    assert rows[4][12] is not None  # the archived record is there, with its date
    sheet = workbook["Assignments"]
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref == "A1:M5"
    title = sheet.cell(row=2, column=6)
    assert title.value == '=HYPERLINK("http://x","y")' and title.data_type == "s"
    assert title.quotePrefix
    assert sheet.cell(row=2, column=9).is_date


def test_second_sheet_follows_the_exported_users(app, admin_client, make):
    """Only the exported users' records: a filtered view, or chosen ids."""
    course = make.course("FIRE", seats=10)
    ann = make.user(first_name="Ann", last_name="Alpha")
    bob = make.user(first_name="Bob", last_name="Beta")
    make.assignment(ann, course)
    make.assignment(bob, course)
    with app.app_context():
        db.session.get(User, bob.id).status = "archived"
        db.session.commit()
    rows = sheet_values(download(admin_client).data, "Assignments")
    assert [r[1] for r in rows[1:]] == ["Ann"]
    rows = sheet_values(download(admin_client, f"?user_ids={bob.id}").data, "Assignments")
    assert [r[1] for r in rows[1:]] == ["Bob"]


def export_links(page: str) -> list[tuple[str, str]]:
    import html
    import re

    block = re.search(r'<ul class="export-links"[^>]*>(.*?)</ul>', page, re.S)[1]
    return [
        (re.sub(r"<[^>]+>", "", label).strip(), html.unescape(href))
        for href, label in re.findall(r'<a [^>]*href="([^"]+)"[^>]*>(.*?)</a>', block, re.S)
    ]


@pytest.mark.parametrize(
    "view",
    [
        "",
        "?status=pending",
        "?status=archived",
        "?status=pending&status=active&status=archived",
        "?status=active",
        "?q=alpha",
    ],
)
def test_each_export_link_says_what_its_file_holds(admin_client, roster, view):
    """ "Export N active users" / "Export this view (M)": the number in each label is the
    number of users in the file it downloads; a view without active users offers no
    "Export 0 active users"."""
    import re

    links = export_links(admin_client.get("/admin/users" + view, headers=HX).text)
    assert links
    for label, href in links:
        assert not label.startswith("Export 0 active")
        number = int(re.search(r"(\d+)", label)[1])
        _, rows = rows_openpyxl(download(admin_client, "?" + href.split("?", 1)[1]).data)
        assert len(rows) - 1 == number, (view, label)
    labels = [label for label, _href in links]
    if view == "":
        assert labels == ["Export 3 active users", "Export this view (4)"]
    elif view == "?status=pending":
        assert labels == ["Export this view (1)"]
    elif view == "?status=active":
        assert labels == ["Export 3 active users"]


@pytest.mark.parametrize("processes", [False, True])
def test_each_sheet_is_queried_only_when_the_writer_reaches_it(
    app, admin_client, roster, processes
):
    """Nothing of the export is read before its response is sent (on PostgreSQL each sheet
    is a server-side cursor that must live in the streaming response, not in the view).
    Written here, the records sheet's query starts after the users sheet is written; with
    sheet processes, a process of its own runs it (this one never does)."""
    from sqlalchemy import event

    app.config["EXPORT_SHEET_PROCESSES"] = processes
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        response = admin_client.get(URL, buffered=False)
        chunks = iter(response.response)
        assert not any("course_assignments" in s for s in statements)
        first = next(chunks)
        assert first.startswith(b"PK")
        body = first + b"".join(chunks)
        response.close()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    records = [n for n, s in enumerate(statements) if "courses.code" in s]
    users = [n for n, s in enumerate(statements) if "user_groups.group_id" in s]
    assert len(users) == 1
    if processes:
        assert records == []
    else:
        assert len(records) == 1 and users[0] < records[0]
    assert sheet_values(body, "Assignments")[1:], "the records are in the workbook"
    assert load_workbook(io.BytesIO(body)).sheetnames == ["Users", "Assignments"]


def test_the_users_sheet_query_fits_each_engine(app, roster):
    """SQLite walks the name index and looks each user's groups and records up (correlated
    subqueries); PostgreSQL aggregates the exported users' groups and records once and
    joins them (no subplan per user: at a million users those took 11 s against 3.5 s), and
    finds a few users by their indexes all the same. Both give the same rows."""
    from sqlalchemy import event

    with app.app_context():
        users = filtered_users(UserFilters(status=["pending", "active", "archived"]))
        seen: list[tuple[str, object]] = []

        def record(_conn, _cursor, statement, parameters, _context, _many):
            seen.append((statement, parameters))

        event.listen(db.engine, "before_cursor_execute", record)
        try:
            rows = list(roster_export.export_rows(users))
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
        ((statement, parameters),) = [(s, p) for s, p in seen if "ORDER BY users.last_name" in s]
        connection = db.session.connection()
        if connection.dialect.name == "postgresql":
            plan = "\n".join(
                r[0] for r in connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
            )
            assert "SubPlan" not in plan, plan
        else:
            plan = " ".join(
                r[-1]
                for r in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            )
            assert "CORRELATED SCALAR SUBQUERY" in plan and "TEMP B-TREE" not in plan, plan
    assert len(rows) == 4
    ann = {r[2]: r for r in rows}["ann@example.com"]
    assert ann[5] == "Drivers, Office" and (ann[11], ann[12]) == (2, 1)
