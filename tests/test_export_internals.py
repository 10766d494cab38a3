"""The pieces the exports share: the writer's batches, the SQLite memory map for the time of
an export, and the training-records export's query (filters as the dashboard's, newest
first, labels spelled by the database)."""

from __future__ import annotations

import io
import threading
import zipfile
from datetime import date, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import event, func, literal_column, select
from sqlalchemy.exc import DBAPIError

from lmsweb import licensing
from lmsweb.extensions import db
from lmsweb.models import AuditEvent, CourseAssignment, User
from lmsweb.xlsx import (
    BATCH_ROWS,
    SQLITE_MMAP_BYTES,
    QueryRows,
    Sheet,
    stream_rows,
    stream_sheets,
    write_sheets,
)
from tests.conftest import IS_POSTGRES


@pytest.mark.parametrize("rows", [0, 1, BATCH_ROWS - 1, BATCH_ROWS, BATCH_ROWS + 1, 2 * BATCH_ROWS])
def test_every_row_is_written_across_batch_boundaries(rows):
    data = [(f"Name{n}", n, f"=x{n}" if n % 7 == 0 else "a & b") for n in range(rows)]
    out = io.BytesIO()
    written = write_sheets(out, [Sheet("S", ["Name", "N", "Text"], iter(data), kinds="tnt")])
    assert written == [rows]
    sheet = load_workbook(out).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[0] == ("Name", "N", "Text")
    assert values[1:] == data
    assert sheet.auto_filter.ref == f"A1:C{rows + 1}"


def test_sqlite_reads_through_a_memory_map_only_during_the_export(app, make):
    make.user()
    with app.app_context():
        connection = db.session.connection()
        if connection.dialect.name != "sqlite":
            pytest.skip("a SQLite setting")

        def mapped() -> int:
            return connection.exec_driver_sql("PRAGMA mmap_size").scalar()

        before = mapped()
        rows = stream_rows(select(User.email))
        assert next(rows) is not None
        # SQLite caps the size at its own maximum.
        assert 0 < mapped() <= SQLITE_MMAP_BYTES and mapped() != before
        list(rows)
        assert mapped() == before
        abandoned = stream_rows(select(User.email))
        next(abandoned)
        abandoned.close()
        assert mapped() == before


def export(admin_client, query: str = "") -> list[dict]:
    response = admin_client.get(f"/admin/dashboard/records.xlsx{query}")
    assert response.status_code == 200
    rows = list(load_workbook(io.BytesIO(response.data)).active.iter_rows(values_only=True))
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def test_the_records_export_filters_by_people_and_spells_labels(app, admin_client, make):
    """A filter on who the records belong to (location, group, search: a subquery over the
    users) keeps only their records; newest first; state, overdue and archive reason as the
    dashboard spells them."""
    north, south = make.location("North & Co"), make.location("South")
    team = make.group("Team <A>")
    kim = make.user(first_name="Kim", last_name="Nord", location_id=north.id, groups=[team])
    lee = make.user(first_name="Lee", last_name="Sud", location_id=south.id)
    first, second = make.course(code="ONE", seats=5), make.course(code="TWO", seats=5)
    late = make.assignment(kim, first, due=date.today() - timedelta(days=2))
    done = make.assignment(kim, second, state="completed")
    make.assignment(lee, first)
    with app.app_context():
        licensing.archive_activity(db.session.get(CourseAssignment, late.id))
        db.session.commit()
        kims = db.session.scalars(
            select(CourseAssignment.id)
            .where(CourseAssignment.user_id == kim.id)
            .order_by(CourseAssignment.id.desc())
        ).all()

    for query in (f"?location={north.id}", f"?group={team.id}", "?q=nord"):
        rows = export(admin_client, query)
        assert [r["Email"] for r in rows] == [kim.email] * len(kims), query
        assert [r["Course code"] for r in rows] == ["TWO", "ONE"]
        assert rows[0]["Location"] == "North & Co"
    by_code = {r["Course code"]: r for r in export(admin_client, f"?location={north.id}")}
    assert by_code["TWO"]["State"] == "Completed" and by_code["TWO"]["Overdue"] == "no"
    assert by_code["TWO"]["Archive reason"] is None and done.id in kims
    # Archived records are never overdue, and say why they were archived.
    assert by_code["ONE"]["State"] == "Not started" and by_code["ONE"]["Overdue"] == "no"
    assert by_code["ONE"]["Archive reason"] == "Course activity archived"
    everyone = export(admin_client)
    assert len(everyone) == 3 and everyone[-1]["Last name"] == "Nord"


def test_the_audit_export_spells_details_and_actors_as_the_log_does(app, admin, admin_client):
    """Details arrive as their stored text and are written with sorted keys (the same text for
    every event that repeats them), empty details as nothing, and an event without an actor
    names the SCIM token from its details, or the system."""
    same = {"before": "pending", "after": "active", "ids": [3, 1]}
    with app.app_context():
        db.session.add_all(
            [
                AuditEvent(actor_id=admin.id, action="t.same", summary="1", details=same),
                AuditEvent(actor_id=admin.id, action="t.same", summary="2", details=same),
                AuditEvent(actor_id=admin.id, action="t.empty", summary="3", details={}),
                AuditEvent(action="t.scim", summary="4", details={"scim_token": "HR <sync>"}),
                AuditEvent(action="t.system", summary="5", details={"z": None, "a": "=1"}),
            ]
        )
        db.session.commit()
    response = admin_client.get("/admin/audit/export.xlsx")
    sheet = load_workbook(io.BytesIO(response.data)).active
    rows = {r[4]: r for r in sheet.iter_rows(min_row=2, values_only=True) if r[2].startswith("t.")}
    spelled = '{"after": "active", "before": "pending", "ids": [3, 1]}'
    assert rows["1"][5] == rows["2"][5] == spelled and rows["1"][1] == admin.email
    assert rows["3"][5] is None
    assert rows["4"][1] == "SCIM token “HR <sync>”"
    assert rows["4"][5] == '{"scim_token": "HR <sync>"}'
    assert rows["5"][1] == "system" and rows["5"][5] == '{"a": "=1", "z": null}'


# --- a sheet written by a process of its own (xlsx.QueryRows, _SheetProcess) -------------------


def _children() -> set[int]:
    """This process's child processes (zombies included until they are reaped)."""
    found: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        found.update(int(pid) for pid in (task / "children").read_text().split())
    return found


def _two_sheets():
    texts = [("plain",), ("a & <b>",), ("=1+2",), (" padded ",), (None,)]
    query = select(User.last_name, User.email, User.approved_at).order_by(User.id)
    return [
        Sheet("Here", ["Text"], iter(texts), kinds="t"),
        Sheet("There", ["Last name", "Email", "Approved"], QueryRows(query, batch=3), kinds="tts"),
    ]


@pytest.mark.parametrize("processes", [False, True])
def test_a_query_sheet_reads_the_same_in_a_process_of_its_own(app, make, processes):
    """The workbook is the same whether the query's sheet is written here or by a process
    of its own (whose member is copied in: the zip's checks pass, every row is there), and
    with processes this process never runs that query."""
    for n in range(7):
        make.user(last_name=f"O'Brien & {n}" if n % 2 else f"=Sum{n}")
    app.config["EXPORT_SHEET_PROCESSES"] = processes
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", seen)
        try:
            out = io.BytesIO()
            written = write_sheets(out, _two_sheets())
        finally:
            event.remove(db.engine, "before_cursor_execute", seen)
        expected = db.session.execute(
            select(User.last_name, User.email, User.approved_at).order_by(User.id)
        ).all()
    assert written == [5, len(expected)] and len(expected) == 7
    with zipfile.ZipFile(out) as archive:
        assert archive.testzip() is None
    book = load_workbook(out)
    # (The last row, empty, has no cells to read back.)
    assert list(book["Here"].iter_rows(values_only=True))[1:] == [
        ("plain",),
        ("a & <b>",),
        ("=1+2",),
        (" padded ",),
    ]
    there = list(book["There"].iter_rows(values_only=True))
    assert there[0] == ("Last name", "Email", "Approved")
    assert [(r[0], r[1]) for r in there[1:]] == [(r[0], r[1]) for r in expected]
    assert all(abs((got[2] - want[2].replace(tzinfo=None)).total_seconds()) < 1
               for got, want in zip(there[1:], expected, strict=True))  # fmt: skip
    assert book["There"].auto_filter.ref == "A1:C8"
    ran_here = any("users.email" in s and "users.approved_at" in s for s in statements)
    assert ran_here is not processes


def test_an_abandoned_export_stops_and_reaps_its_sheet_process(app, make):
    make.user()
    app.config["EXPORT_SHEET_PROCESSES"] = True
    with app.app_context():
        before = _children()
        chunks = stream_sheets(_two_sheets())
        assert next(chunks).startswith(b"PK")
        assert len(_children() - before) == 1, "the second sheet's process runs"
        chunks.close()
        assert _children() == before


def test_a_failing_sheet_process_fails_the_export(app, make, capfd):
    """A process that cannot write its sheet makes the workbook fail (a truncated download),
    never a workbook silently missing rows; the process is reaped and its error logged."""
    make.user()
    app.config["EXPORT_SHEET_PROCESSES"] = True
    broken = select(User.email).where(literal_column("no_such_column") == 1)
    sheets = [
        Sheet("Here", ["Text"], iter([("a",)]), kinds="t"),
        Sheet("There", ["Email"], QueryRows(broken), kinds="t"),
    ]
    with app.app_context():
        before = _children()
        with pytest.raises(RuntimeError, match="sheet's process failed"):
            write_sheets(io.BytesIO(), sheets)
        assert _children() == before
    assert "no_such_column" in capfd.readouterr().err


# --- PostgreSQL: the cursor read ahead by a thread (xlsx._read_ahead) ----------------------------


def _readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "xlsx-read-ahead"]


@pytest.mark.skipif(not IS_POSTGRES, reason="PostgreSQL's cursor is read ahead")
def test_rows_read_ahead_arrive_in_order_and_an_abandoned_read_ends_its_thread(app, make):
    for n in range(10):
        make.user(last_name=f"Ahead{n:02d}")
    query = select(User.last_name).where(User.last_name.like("Ahead%")).order_by(User.last_name)
    with app.app_context():
        assert [r[0] for r in stream_rows(query, batch=3)] == [f"Ahead{n:02d}" for n in range(10)]
        abandoned = stream_rows(query, batch=3)
        assert next(abandoned)[0] == "Ahead00"
        assert len(_readers()) == 1
        abandoned.close()
        assert _readers() == []
        # The connection is the request's again, usable at once.
        assert db.session.scalar(select(func.count()).select_from(User)) >= 10


@pytest.mark.skipif(not IS_POSTGRES, reason="PostgreSQL's cursor is read ahead")
def test_an_error_met_while_reading_ahead_is_raised_to_the_writer(app):
    # Row by row the server divides by zero at the fourth row, in a later batch. A series
    # yields its rows in order as they are fetched: over a table, a planner that sorts
    # first computes every row before the first fetch (as it did once the table's
    # statistics said it was empty).
    n = func.generate_series(1, 6).table_valued("value").render_derived(name="n")
    failing = select(literal_column("1") / (n.c.value - 4)).select_from(n)
    with app.app_context():
        rows = stream_rows(failing, batch=2)
        assert next(rows) is not None
        with pytest.raises(DBAPIError, match="division by zero"):
            list(rows)
        assert _readers() == []
