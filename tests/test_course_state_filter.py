"""Advanced filter "course C in state S": the list, its count, select-all bulk actions and
the export all select the same users."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from lmsweb.models import User
from lmsweb.user_queries import COURSE_STATES, UserFilters
from tests.conftest import HX, get
from tests.test_bulk import post
from tests.test_export import download, rows_openpyxl


@pytest.fixture
def people(app, make):
    fire, gdpr = make.course("FIRE-1"), make.course("GDPR-1")
    u = {
        name: make.user(first_name=name, last_name="Person")
        for name in ("Nina", "Stan", "Cora", "Owen", "Arlo", "Gail")
    }
    make.assignment(u["Nina"], fire)  # not started, due in 30 days
    make.assignment(u["Stan"], fire, state="in_progress")
    make.assignment(u["Cora"], fire, state="completed")
    make.assignment(u["Owen"], fire, due=date.today() - timedelta(days=2))  # overdue
    arlo = make.assignment(u["Arlo"], fire)
    make.assignment(u["Gail"], gdpr)  # another course
    from lmsweb import licensing
    from lmsweb.extensions import db
    from lmsweb.models import CourseAssignment

    with app.app_context():
        licensing.archive_activity(db.session.get(CourseAssignment, arlo.id))
        db.session.commit()
    return {"fire": fire, "gdpr": gdpr, **u}


def names(html: str) -> set[str]:
    return set(re.findall(r'<tr id="user-\d+">.*?>Person, (\w+)</a>', html))


EXPECTED = {
    "": {"Nina", "Stan", "Cora", "Owen"},
    "not_started": {"Nina", "Owen"},
    "started": {"Stan"},
    "completed": {"Cora"},
    "overdue": {"Owen"},
    "archived": {"Arlo"},
}


@pytest.mark.parametrize("state", list(EXPECTED))
def test_list_and_count_show_the_course_state(admin_client, people, state):
    query = f"course={people['fire'].id}&course_state={state}"
    page = admin_client.get(f"/admin/users?{query}", headers=HX)
    assert names(page.text) == EXPECTED[state]
    n = len(EXPECTED[state])
    assert f"{n} {'user' if n == 1 else 'users'} match" in page.text
    chip = f"FIRE-1 · {COURSE_STATES.get(state, 'any state')}"
    assert chip in page.text


def test_state_without_a_course_means_any_course(admin_client, people):
    page = admin_client.get("/admin/users?course_state=not_started", headers=HX)
    assert names(page.text) == {"Nina", "Owen", "Gail"}


def test_the_panel_offers_the_course_and_state_and_keeps_them(admin_client, people):
    page = admin_client.get(f"/admin/users?course={people['fire'].id}&course_state=overdue")
    assert re.search(rf'<option selected value="{people["fire"].id}">FIRE-1</option>', page.text)
    assert '<option selected value="overdue">Overdue</option>' in page.text
    assert 'id="users-course"' in page.text and 'for="users-course-state"' in page.text


def test_bad_values_are_ignored():
    filters = UserFilters.from_args(
        __import__("werkzeug").datastructures.MultiDict({"course": "x", "course_state": "bogus"})
    )
    assert filters.course is None and filters.course_state == "" and not filters.active


def test_select_all_matching_bulk_acts_on_the_filtered_users_only(app, admin_client, people):
    response = post(
        admin_client,
        "archive_user",
        matching={
            "filter_course": str(people["fire"].id),
            "filter_course_state": "not_started",
        },
        confirm="1",
    )
    assert response.status_code == 200, response.text
    archived = {
        n
        for n in EXPECTED[""] | {"Arlo", "Gail"}
        if get(app, User, people[n].id).status == "archived"
    }
    assert archived == {"Nina", "Owen"}


def test_export_honours_the_course_state(admin_client, people):
    data = download(admin_client, f"?course={people['fire'].id}&course_state=started").data
    _, rows = rows_openpyxl(data)
    assert [r[0] for r in rows[1:]] == ["Stan"]
