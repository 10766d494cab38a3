"""After a row action in a filtered view the row leaves if it no longer matches, and
"N users match" is re-sent out of band, so the list never shows a stale count."""

from __future__ import annotations

from tests.conftest import HX


def _from_list(query: str) -> dict:
    return {**HX, "HX-Current-URL": f"http://localhost/admin/users?{query}"}


def test_approve_in_the_pending_view_drops_the_row_and_updates_the_count(admin_client, make):
    a = make.user(status="pending", first_name="Pia")
    make.user(status="pending", first_name="Paz")
    response = admin_client.post(
        f"/admin/users/{a.id}/approve",
        data={"next": "/admin/users?status=pending"},
        headers=_from_list("status=pending"),
    )
    assert response.status_code == 200
    assert f'id="user-{a.id}"' not in response.text
    assert 'id="users-count"' in response.text and "data-hx-swap-oob" in response.text
    assert "1 user matches these filters" in response.text


def test_a_row_that_still_matches_stays_and_the_count_follows(admin_client, make):
    a = make.user(status="pending")
    response = admin_client.post(
        f"/admin/users/{a.id}/approve", data={"next": "/admin/users"}, headers=_from_list("")
    )
    assert f'id="user-{a.id}"' in response.text
    assert "2 users</p>" in response.text  # the administrator and this user


def test_from_elsewhere_only_the_row_comes_back(admin_client, make):
    a = make.user(status="pending")
    response = admin_client.post(
        f"/admin/users/{a.id}/approve",
        data={"next": "/admin/users?status=pending"},
        headers={**HX, "HX-Current-URL": f"http://localhost/admin/users/{a.id}"},
    )
    assert f'id="user-{a.id}"' in response.text
    assert 'id="users-count"' not in response.text


def _statements(app, client, url: str, headers: dict) -> list[str]:
    """The statements one request executes (SQLite's explicit BEGIN left out: PostgreSQL's
    is implicit)."""
    from sqlalchemy import event

    from lmsweb.extensions import db

    with app.app_context():
        engine = db.engine
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        if statement.strip().upper() != "BEGIN":
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        assert client.get(url, headers=headers).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def test_a_page_of_rows_costs_four_statements_and_the_full_page_five(app, admin_client, make):
    """Rows with locations, several groups and training records: the list partial reads the
    signed-in administrator, the count, the page's ids and the rows with everything they
    show (one statement); the full page adds the filter panel's and bulk bar's choices (one
    more). It was six and nine: the rows' groups and training counts, and the bulk bar's
    groups and courses, were statements of their own."""
    groups = [make.group(f"Team {n}") for n in range(4)]
    places = [make.location(f"Site {n}") for n in range(3)]
    course = make.course("ROW-1", seats=100)
    for n in range(60):
        user = make.user(location_id=places[n % 3].id, groups=groups[: n % 5])
        if n % 4 == 0:
            make.assignment(user, course)
    search_box = {**HX, "HX-Trigger": "users-q"}
    for per_page in (25, 100):
        partial = _statements(app, admin_client, f"/admin/users?per_page={per_page}", search_box)
        assert len(partial) == 4, partial
    page = _statements(app, admin_client, "/admin/users", {})
    assert len(page) == 5, page
    # Chips name what is filtered on: one statement for all of them.
    filtered = f"/admin/users?location={places[0].id}&group={groups[1].id}&course={course.id}"
    assert len(_statements(app, admin_client, filtered, search_box)) == 5
