"""Dashboard compliance by group, location and manager; each figure's link lists exactly the
people it counts; the weekly digest to administrators who ask for it."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa
import time_machine

from lmsweb.extensions import db
from lmsweb.models import AuditEvent, OutboundEmail, User
from tests.conftest import count, get


@pytest.fixture(autouse=True)
def _own_dev_mailbox(app, tmp_path):
    """Mail drained without MAIL_SERVER lands in this test's own instance folder, not in the
    session's (where the outbox tests count the messages)."""
    app.instance_path = str(tmp_path)


def listed(client, url) -> set[int]:
    page = client.get(url)
    assert page.status_code == 200
    return {int(i) for i in re.findall(r'<tr id="user-(\d+)"', page.text)}


def test_figures_by_group_location_and_manager_link_to_exactly_those_people(
    app, admin_client, make
):
    nurses, oslo = make.group("Nurses"), make.location("Oslo")
    boss = make.user(first_name="Maria", last_name="Boss")
    course, other = make.course("SAFE"), make.course("FIRE")
    today = date.today()

    def person(**kw):
        return make.user(groups=[nurses], location_id=oslo.id, manager_id=boss.id, **kw)

    late, fine, done, mixed = person(), person(), person(), person()
    make.assignment(late, course, due=today - timedelta(days=2))
    make.assignment(late, other, state="completed")
    make.assignment(fine, course, due=today + timedelta(days=5))
    make.assignment(done, course, state="completed")
    make.assignment(mixed, course, state="completed")
    make.assignment(mixed, other, state="in_progress", due=today - timedelta(days=1))
    person()  # no training: not counted
    gone = person()
    make.assignment(gone, course, due=today - timedelta(days=9))
    with app.app_context():
        db.session.get(User, gone.id).status = "archived"
        db.session.commit()

    page = admin_client.get("/admin/dashboard")
    assert page.status_code == 200
    expected = {
        "on_time": {fine.id, done.id},
        "overdue": {late.id, mixed.id},
        "completed": {done.id},
        "expired": set(),
    }
    for dimension, ident in (("group", nurses.id), ("location", oslo.id), ("manager", boss.id)):
        row = re.search(
            rf'<tr id="compliance-{dimension}-{ident}">(.*?)</tr>', page.text, flags=re.S
        ).group(1)
        assert '<td class="num">4</td>' in row
        for figure, people in expected.items():
            cell = re.search(rf'data-figure="{figure}"><a href="([^"]+)">(\d+) ', row)
            url, number = cell.group(1).replace("&amp;", "&"), int(cell.group(2))
            assert number == len(people)
            assert listed(admin_client, url) == people, (dimension, figure)
    assert "(50%)" in page.text
    assert 'id="dash-waiting">0<' in page.text and 'id="dash-expired">0<' in page.text


def at(day: date):
    return time_machine.travel(datetime(day.year, day.month, day.day, 7, 0), tick=False)


def test_the_weekly_digest_goes_once_a_week_to_administrators_who_asked(
    app, admin, admin_client, make, runner
):
    make.admin(email="other.admin@example.com")  # did not ask
    group = make.group("Nurses")
    make.assignment(make.user(groups=[group]), make.course("SAFE"))
    response = admin_client.post("/admin/dashboard/digest", data={"digest": "on"})
    assert response.status_code == 303 and get(app, User, admin.id).wants_digest
    assert count(app, AuditEvent, AuditEvent.action == "user.digest") == 1
    assert admin_client.post("/admin/dashboard/digest", data={"digest": "x"}).status_code == 422

    for day in (date(2026, 3, 2), date(2026, 3, 4), date(2026, 3, 8), date(2026, 3, 9)):
        with at(day):
            result = runner.invoke(args=["lms", "worker", "--once", "--now", f"{day}T07:00"])
        assert result.exit_code == 0, result.output
    with app.app_context():
        digests = db.session.execute(
            sa.select(OutboundEmail.recipient, OutboundEmail.subject, OutboundEmail.body_text)
            .where(OutboundEmail.kind == "digest")
            .order_by(OutboundEmail.id)
        ).all()
    assert [(r, s) for r, s, _ in digests] == [
        (admin.email, "Test Org: compliance this week (2026-03-02)"),
        (admin.email, "Test Org: compliance this week (2026-03-09)"),
    ]
    assert "Nurses (1): on time 1 (100%), overdue 0 (0%)" in digests[0][2]
