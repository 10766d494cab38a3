"""The Audit log page: filters, paging, both renderings, export."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import pytest
from openpyxl import load_workbook

from lmsweb import audit
from lmsweb.blueprints.audit_log import PER_PAGE
from lmsweb.extensions import db
from lmsweb.models import AuditEvent, User
from tests.conftest import HX, count


@pytest.fixture
def events(app, admin, make):
    """Three actions by two administrators on two users, on different days."""
    other = make.admin(first_name="Otto", last_name="Other", email="otto@example.com")
    jane = make.user(first_name="Jane", last_name="Doe", email="jane@example.com")
    john = make.user(first_name="John", last_name="Roe", email="john@example.com")
    with app.app_context():
        ada, otto = db.session.get(User, admin.id), db.session.get(User, other.id)
        rows = [
            (ada, "user.approve", jane, datetime(2026, 3, 1, 9), {"via": "row"}),
            (otto, "user.archive", john, datetime(2026, 3, 2, 9), {"mode": "user"}),
            (otto, "user.notify", jane, datetime(2026, 3, 3, 9), {}),
        ]
        for actor, action, target, when, details in rows:
            event = audit.record(
                action,
                actor=actor,
                target=db.session.get(User, target.id),
                summary=f"{action} {target.email}",
                details=details,
            )
            event.created_at = when
        db.session.commit()


def _ids(html: str) -> int:
    return html.count('<tr id="audit-')


def test_lists_actor_action_target_details_and_time(admin_client, events):
    page = admin_client.get("/admin/audit")
    assert page.status_code == 200
    assert "<h1>Audit log</h1>" in page.text
    assert _ids(page.text) == 3
    assert "otto@example.com" in page.text and "john@example.com" in page.text
    assert "user.archive" in page.text and "&#34;mode&#34;: &#34;user&#34;" in page.text
    assert "2026-03-02 09:00:00" in page.text
    table = page.text[page.text.index('id="audit-table"') :]
    assert table.index("user.notify") < table.index("user.approve")  # newest first


@pytest.mark.parametrize(
    "query,expected",
    [
        ("actor=otto", 2),
        ("actor=Ada+Admin", 1),
        ("action=user.archive", 1),
        ("target=jane", 2),
        ("target=Roe", 1),
        ("date_from=2026-03-02", 2),
        ("date_to=2026-03-02", 2),
        ("date_from=2026-03-02&date_to=2026-03-02", 1),
        ("actor=otto&target=jane", 1),
    ],
)
def test_filters(admin_client, events, query, expected):
    assert _ids(admin_client.get(f"/admin/audit?{query}").text) == expected


def test_htmx_gets_the_results_partial(admin_client, events):
    r = admin_client.get("/admin/audit?action=user.notify", headers=HX)
    assert r.status_code == 200
    assert "<html" not in r.text and _ids(r.text) == 1
    assert "HX-Request" in r.headers["Vary"]


@pytest.mark.parametrize(
    "query", ["date_from=yesterday", "date_from=2026-03-05&date_to=2026-03-01", "action=nope"]
)
def test_bad_filters_are_422_with_the_form(admin_client, events, query):
    r = admin_client.get(f"/admin/audit?{query}")
    assert r.status_code == 422
    assert "field__error" in r.text


def test_paged(app, admin_client, admin):
    with app.app_context():
        actor = db.session.get(User, admin.id)
        for n in range(PER_PAGE + 5):
            audit.record("course.create", actor=actor, summary=f"Course {n}")
        db.session.commit()
    first = admin_client.get("/admin/audit")
    assert _ids(first.text) == PER_PAGE
    assert "Page 1 of 2" in first.text and 'rel="next"' in first.text
    second = admin_client.get("/admin/audit?page=2")
    assert _ids(second.text) >= 5
    assert admin_client.get("/admin/audit?page=x").status_code == 200


def test_export_has_the_filtered_rows_and_is_audited(app, admin_client, events):
    with admin_client.get("/admin/audit/export.xlsx?actor=otto") as r:
        assert r.status_code == 200
        assert r.mimetype.endswith("spreadsheetml.sheet")
        sheet = load_workbook(io.BytesIO(r.data)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == ("Time (UTC)", "Actor", "Action", "Target", "Summary", "Details")
    assert [row[2] for row in rows[1:]] == ["user.notify", "user.archive"]
    assert rows[2][3] == "john@example.com" and rows[2][5] == '{"mode": "user"}'
    assert count(app, AuditEvent, AuditEvent.action == "audit.export") == 1


def test_export_neutralises_formulas(app, admin_client, admin):
    with app.app_context():
        audit.record(
            "user.edit", actor=db.session.get(User, admin.id), summary="=HYPERLINK(1)"
        ).created_at = datetime.now() - timedelta(minutes=1)
        db.session.commit()
    with admin_client.get("/admin/audit/export.xlsx?action=user.edit") as r:
        cell = load_workbook(io.BytesIO(r.data)).active["E2"]
    assert cell.data_type == "s" and cell.value == "=HYPERLINK(1)"


def test_learners_may_not_see_it(learner_client):
    assert learner_client.get("/admin/audit").status_code == 403
    assert learner_client.get("/admin/audit/export.xlsx").status_code == 403


def test_an_empty_log_says_so_and_only_filters_matching_nothing_ask_to_change_them(
    admin_client, make
):
    """With no event at all and no filter, the page said "No events match — change or clear
    the filters", pointing at filters nobody had set."""
    page = admin_client.get("/admin/audit")
    assert page.status_code == 200
    assert "No events yet" in page.text and "No events match" not in page.text
    filtered = admin_client.get("/admin/audit?actor=nobody-by-this-name", headers=HX)
    assert filtered.status_code == 200
    assert "No events match" in filtered.text and "No events yet" not in filtered.text
