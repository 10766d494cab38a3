"""The organisation's pages at a million users: what grows with the people (members,
records) is read from kept counts or an index, never by reading every row. A million users
measured 130 ms for the groups page, 225 ms for a course's and 94 ms for the rules page;
each now reads a few rows (docs/benchmarks.md, *An organisation chart*)."""

from __future__ import annotations

import re

import pytest

from lmsweb.extensions import db
from tests.conftest import IS_POSTGRES
from tests.test_query_plans import captured

sqlite_only = pytest.mark.skipif(IS_POSTGRES, reason="SQLite's planner")


def _statements(app, client, url: str) -> list[str]:
    with app.app_context():
        seen = captured(app, lambda: client.get(url))
    return [statement for statement, _ in seen]


@pytest.mark.parametrize("kind", ["groups", "locations"])
def test_member_counts_come_from_the_kept_counts(app, admin_client, make, kind):
    oslo, nurses = make.location("Oslo"), make.group("Nurses")
    for status in ("active", "pending", "archived"):
        make.user(status=status, location_id=oslo.id, groups=[nurses])
    item = nurses if kind == "groups" else oslo
    page = admin_client.get(f"/admin/{kind}").text
    row = re.search(rf'<tr id="{kind[:-1]}-{item.id}">.*?</tr>', page, flags=re.S).group(0)
    assert f'3 <span class="sr-only">users in {item.name}' in row, row
    statements = _statements(app, admin_client, f"/admin/{kind}")
    counting = [s for s in statements if "count(" in s.lower() or "sum(" in s.lower()]
    assert counting and all("user_counts" in s for s in counting), counting
    assert not any("FROM user_groups" in s or "FROM users GROUP BY" in s for s in statements)


def test_a_course_without_allocations_counts_no_seats_by_location(app, admin_client, make):
    course = make.course("BIG", seats=5)
    make.assignment(make.user(location_id=make.location("Oslo").id), course)
    statements = _statements(app, admin_client, f"/admin/courses/{course.id}")
    assert not any("GROUP BY users.location_id" in s for s in statements), statements


@sqlite_only
def test_the_rules_page_counts_a_rules_records_from_their_index(app, admin_client, make):
    make.assignment(make.user(), make.course("RULE-1"))
    with app.app_context():
        seen = captured(app, lambda: admin_client.get("/admin/rules"))
        ((statement, parameters),) = [
            (s, p) for s, p in seen if "course_assignments.rule_id" in s and "count(" in s
        ]
        plan = " ".join(
            row[-1]
            for row in db.session.connection().exec_driver_sql(
                f"EXPLAIN QUERY PLAN {statement}", parameters
            )
        )
    assert "ix_course_assignments_rule" in plan and "SCAN course_assignments" not in plan, plan
