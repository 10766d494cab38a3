"""The Users list's queries at scale: which index SQLite's planner takes (without statistics,
the plan chosen on a small database is the plan a large one gets)."""

from __future__ import annotations

import re
from datetime import date

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from lmsweb.extensions import db
from lmsweb.models import User
from lmsweb.user_queries import training_counts

from .conftest import IS_POSTGRES

sqlite_only = pytest.mark.skipif(IS_POSTGRES, reason="SQLite's planner and statistics")


def captured(app, work) -> list[tuple[str, tuple]]:
    """The statements (with parameters) that `work()` executes."""
    seen: list[tuple[str, tuple]] = []

    def record(_conn, _cursor, statement, parameters, _context, _many):
        seen.append((statement, parameters))

    engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        work()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


@sqlite_only
def test_training_counts_look_up_the_page_users_not_every_open_record(appctx, make):
    users = [make.user() for _ in range(3)]
    course = make.course("PLAN-1")
    make.assignment(users[0], course)
    assert (
        db.session.scalar(sa.text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'"))
        == 0
    )
    # A page's worth of ids (50): the planner weighs that many lookups against one range.
    ids = [u.id for u in users] + list(range(10_000, 10_047))
    ((statement, parameters),) = captured(appctx, lambda: training_counts(ids, date.today()))
    plan = " ".join(
        row[-1]
        for row in db.session.connection().exec_driver_sql(
            f"EXPLAIN QUERY PLAN {statement}", parameters
        )
    )
    # By user first (0012_figures' (user_id, archived_at, ...) index serves it too), not
    # `(archived_at=?`: that range is every open training record of the organisation.
    assert "(user_id=?" in plan and "(archived_at=?" not in plan, plan
    assert training_counts(ids, date.today())[users[0].id].open == 1


def test_a_large_group_is_listed_by_walking_the_name_order(app, admin_client, make, monkeypatch):
    """Past the count cap a group filter is tested row by row along the name index (no sort
    of every member); the rows and their order are those of the usual query."""
    from werkzeug.datastructures import MultiDict

    from lmsweb.blueprints.users import listing
    from lmsweb.user_queries import UserFilters, filtered_users, ordered

    from .conftest import HX

    monkeypatch.setattr(listing, "COUNT_CAP", 5)
    team, other = make.group("Team"), make.group("Other")
    for n in range(40):
        make.user(last_name=f"Walk{(n * 7) % 40:02d}", groups=[team] if n % 4 else [other])
    args = MultiDict([("group", str(team.id)), ("per_page", "25")])
    with app.app_context():
        filters = UserFilters.from_args(args)
        expected = list(
            db.session.scalars(ordered(filtered_users(filters).with_only_columns(User.id), "name"))
        )
        walked = ordered(filtered_users(filters, walk=True).with_only_columns(User.id), "name")
        assert list(db.session.scalars(walked)) == expected
        if not IS_POSTGRES:
            ((statement, parameters),) = captured(
                app, lambda: db.session.scalars(walked.limit(26)).all()
            )
            plan = " ".join(
                row[-1]
                for row in db.session.connection().exec_driver_sql(
                    f"EXPLAIN QUERY PLAN {statement}", parameters
                )
            )
            assert "TEMP B-TREE FOR ORDER BY" not in plan, plan
    shown = []
    for page in (1, 2):
        html = admin_client.get(
            f"/admin/users?group={team.id}&per_page=25&page={page}", headers=HX
        ).text
        shown += [int(i) for i in re.findall(r'<tr id="user-(\d+)"', html)]
    assert len(expected) == 30 and shown == expected


@pytest.mark.parametrize("sort", ["location", "-location"])
def test_past_the_cap_location_order_is_walked_location_by_location(
    app, admin_client, make, monkeypatch, sort
):
    """Past the count cap the location order is read one location at a time from its name
    index; every page holds the rows of the sorted join, in its order."""
    from werkzeug.datastructures import MultiDict

    from lmsweb.blueprints.users import listing
    from lmsweb.user_queries import UserFilters, filtered_users, ordered

    from .conftest import HX

    monkeypatch.setattr(listing, "COUNT_CAP", 5)
    places = [make.location(name) for name in ("Oslo", "Berlin", "Lyon")]
    team = make.group("Team")
    for n in range(70):
        place = places[n % 4] if n % 4 < 3 else None
        make.user(
            last_name=f"Place{(n * 11) % 70:02d}",
            location_id=place.id if place else None,
            groups=[team] if n % 3 else [],
        )
    for query in (f"sort={sort}", f"sort={sort}&group={team.id}"):
        args = MultiDict([*MultiDict(p.split("=") for p in query.split("&")).items(multi=True)])
        with app.app_context():
            filters = UserFilters.from_args(args)
            expected = list(
                db.session.scalars(
                    ordered(filtered_users(filters).with_only_columns(User.id), sort)
                )
            )
        shown = []
        for page in range(1, (len(expected) + 24) // 25 + 1):
            html = admin_client.get(
                f"/admin/users?{query}&per_page=25&page={page}", headers=HX
            ).text
            shown += [int(i) for i in re.findall(r'<tr id="user-(\d+)"', html)]
        assert len(expected) > 25 and shown == expected, query
        with app.app_context():
            seen = captured(
                app, lambda q=query: admin_client.get(f"/admin/users?{q}&per_page=25", headers=HX)
            )
        # No statement sorts the matching users by the joined location name.
        joined = [s for s, _ in seen if "FROM users" in s and "ORDER BY locations.name" in s]
        assert not joined, query


@sqlite_only
def test_a_scoped_page_past_the_cap_walks_the_name_order(app, make, monkeypatch):
    """A scoped administrator's list past the count cap reads its page along the name index,
    testing the scope row by row (a primary key probe of scope_members): not every person
    in scope found by both indexes (MULTI-INDEX OR) and sorted, 12,000 rows for a page of
    50 (#17)."""
    from lmsweb.blueprints.users import listing

    from .conftest import HX, login
    from .test_scopes import scope_admin

    monkeypatch.setattr(listing, "COUNT_CAP", 5)
    here, team = make.location("Here"), make.group("Team")
    for n in range(80):
        make.user(last_name=f"Scoped{n:02d}", location_id=here.id if n % 2 else None,
                  groups=[team] if n % 3 else [])  # fmt: skip
    sam = make.admin(email="sam@example.com")
    scope_admin(app, sam, [here], [team])
    client = app.test_client()
    login(client, sam.email)
    with app.app_context():
        seen = captured(app, lambda: client.get("/admin/users?per_page=25", headers=HX))
        (page,) = [(s, p) for s, p in seen if "ORDER BY users.last_name" in s and "LIMIT" in s]
        plan = " ".join(
            row[-1]
            for row in db.session.connection().exec_driver_sql(
                f"EXPLAIN QUERY PLAN {page[0]}", page[1]
            )
        )
    assert "TEMP B-TREE FOR ORDER BY" not in plan and "MULTI-INDEX OR" not in plan, plan
    assert "SEARCH scope_members USING COVERING INDEX" in plan, plan
    assert "(scope_id=? AND user_id=?)" in plan, plan


def _scoped_world(app, make, monkeypatch):
    """80 people, half at Here, a third in Team; Sam scoped to Here + Team; the count cap 5.
    Sam's client, signed in."""
    from lmsweb.blueprints.users import listing

    from .conftest import login
    from .test_scopes import scope_admin

    monkeypatch.setattr(listing, "COUNT_CAP", 5)
    here, there, team = make.location("Here"), make.location("There"), make.group("Team")
    for n in range(80):
        make.user(last_name=f"Scoped{n:02d}", location_id=(here if n % 2 else there).id,
                  groups=[team] if n % 3 else [])  # fmt: skip
    sam = make.admin(email="sam@example.com")
    scope_admin(app, sam, [here], [team])
    client = app.test_client()
    login(client, sam.email)
    return client, here, there


def _plans(app, client, url: str, wanted) -> list[str]:
    from .conftest import HX

    prefix = "EXPLAIN" if IS_POSTGRES else "EXPLAIN QUERY PLAN"
    with app.app_context():
        seen = captured(app, lambda: client.get(url, headers=HX))
        return [
            " ".join(
                str(row[-1]) for row in db.session.connection().exec_driver_sql(f"{prefix} {s}", p)
            )
            for s, p in seen
            if wanted(s)
        ]


def test_the_scoped_count_is_a_range_of_scope_members(app, make, monkeypatch):
    """The scoped list's count, narrowed by no more than status and role, reads
    scope_members alone (status and role are copied there): no user's row, no OR of the
    scope's locations and groups (#17)."""
    client, _here, _there = _scoped_world(app, make, monkeypatch)
    for url in ("/admin/users", "/admin/users?status=archived&role=learner&page=3"):
        (plan,) = _plans(app, client, url, lambda s: "count(*)" in s)
        assert "scope_members" in plan and "users" not in plan, plan
        if not IS_POSTGRES:
            assert "COVERING INDEX ix_scope_members_status (scope_id=?" in plan, plan


@sqlite_only
def test_a_scoped_list_filtered_by_a_location_starts_from_the_location(app, make, monkeypatch):
    """Filtered by a location (a group, a search), the scoped count and page are driven by
    the filter's index and probe scope_members per row: not every member of the scope read
    first and each looked up (a location of 317 people in a scope of 12,338) (#17)."""
    client, _here, there = _scoped_world(app, make, monkeypatch)
    plans = _plans(
        app,
        client,
        f"/admin/users?location={there.id}",
        lambda s: "scope_members" in s and ("count(*)" in s or "ORDER BY users.last_name" in s),
    )
    assert len(plans) == 2  # the count, the page
    for plan in plans:
        assert "ix_users_location" in plan and "(scope_id=? AND user_id=?)" in plan, plan
        assert "LIST SUBQUERY" not in plan, plan


@sqlite_only
def test_the_email_order_walks_its_covering_index(app, admin_client, make):
    """Sorted by email, a page is a walk of ix_users_search_email alone (the filtered columns
    are in it): not of the unique index on lower(email) and every row it passes, which made
    page 500 of a million users 135 ms (#19). lower(email) is unique: no id after it."""
    from .conftest import HX

    for n in range(5):
        make.user(email=f"walk{n}@example.com")
    with app.app_context():
        seen = captured(
            app, lambda: admin_client.get("/admin/users?sort=email&page=2&per_page=25", headers=HX)
        )
        (page,) = [(s, p) for s, p in seen if "ORDER BY lower(users.email)" in s]
        explained = db.session.connection().exec_driver_sql(
            f"EXPLAIN QUERY PLAN {page[0]}", page[1]
        )
        plan = " ".join(row[-1] for row in explained)
    assert "COVERING INDEX ix_users_search_email" in plan and "TEMP B-TREE" not in plan, plan


@pytest.mark.skipif(not IS_POSTGRES, reason="PostgreSQL's search paging (SQLite drives from FTS5)")
@pytest.mark.parametrize("sort", ["name", "-name", "email", "location", "-created"])
def test_counted_matches_are_sorted_with_their_keys_in_the_counts_statement(
    app, admin_client, make, sort
):
    """A search whose matches are counted (no more than the cap) is sorted in the count's
    own statement (`counted_with_page`): the matches are read once, with their sort keys,
    no walk of the order first (the page's statement joined every match back to `users` to
    sort it: 19,188 lookups for "rossi" at a million users; then it read them all a second
    time). The page is the usual ordering's slice."""
    from .conftest import HX
    from .test_users_list import _forward, listed

    here, there = make.location("Here"), make.location("There")
    for n in range(60):
        make.user(last_name=f"Zmarsh{(n * 7) % 60:02d}", location=here if n % 2 else there)
        make.user(last_name=f"Other{n:02d}")
    query = f"q=mars&sort={sort}&per_page=25"
    expected = _forward(app, query)
    assert len(expected) == 60
    with app.app_context():
        seen = captured(app, lambda: admin_client.get(f"/admin/users?{query}&page=2", headers=HX))
    (read,) = [s for s, _ in seen if "search_text" in s]  # the count, and the page with it
    assert "count(*)" in read and "row_number()" in read and "AS hit" not in read, read
    assert len(re.findall(r"\bFROM users\b", read)) == 1, read
    assert listed(admin_client, f"{query}&page=2") == expected[25:50]
    assert listed(admin_client, f"{query}&page=3") == expected[50:]
    # A page past the end is the last one.
    assert listed(admin_client, f"{query}&page=9") == expected[50:]


def test_a_search_counted_past_the_cap_walks_briefly_first_only_where_its_matches_are_dense():
    """Past the count's cap a search's page is looked for in a walk of 5,000 rows, then of
    40,000, then its matches are sorted. The short walk is left out where the matches
    counted so far, among everyone, would not hold the page twice over in it: at a million
    users "ma", "mar", "son" and "rossi" had none in it, and it cost each 3.5 ms."""
    from lmsweb.user_queries import search_walks

    def everyone(n):
        return lambda: n

    # 10,001 matches of 100,000 users: about 500 in 5,000 rows.
    assert search_walks(0, 51, everyone(100_000), 10_001) == [5_000, 40_000]
    # Of a million: about 50, fewer than the 102 the page wants twice over.
    assert search_walks(0, 51, everyone(1_000_000), 10_001) == [40_000]
    # A deep page's walks are longer, and so is what they should hold.
    assert search_walks(4_949, 51, everyone(100_000), 10_001) == [250_000, 2_000_000]
    assert search_walks(4_949, 51, everyone(1_000_000), 10_001) == [2_000_000]
    # Not knowing how many users there are (SQLite's walk): both.
    assert search_walks(0, 51) == [5_000, 40_000]


@pytest.mark.skipif(not IS_POSTGRES, reason="PostgreSQL's forms of a prefix search")
def test_prefix_words_are_ored_ranges_where_postgresql_reads_their_matches(app, admin_client, make):
    """A word of two letters (or one, beside a longer word) is its four prefix ranges ORed,
    which PostgreSQL reads as one bitmap, stopping the capped count early: the union of
    their ids, hashed whole first, took "ma" at a million users 53 ms and "m son" 845 ms. A
    lone letter (a third of the users) and a walk past SEARCH_HASHED_WALK rows keep the
    hash. Every form finds the same users."""
    from lmsweb import user_queries

    from .conftest import HX
    from .test_users_list import listed

    people = [
        make.user(first_name="Mara", last_name="Stone"),
        make.user(first_name="Lee", last_name="Madson"),
        make.user(first_name="Kim", last_name="Olson", email="maxi@example.com"),
        make.user(first_name="Ann", last_name="Berg", employee_id="MA-7"),
        make.user(first_name="Ömer", last_name="Smith"),
        make.user(first_name="Bo", last_name="Mills"),
    ]
    ids = [p.id for p in people]

    def found(q: str) -> tuple[set[int], list[str]]:
        with app.app_context():
            seen = captured(app, lambda: admin_client.get(f"/admin/users?q={q}", headers=HX))
        # The matches' count (a short word's emails may be counted first, alone).
        counts = [s for s, _ in seen if "count(*)" in s and "first_name" in s]
        return set(listed(admin_client, f"q={q}")) & set(ids), counts

    expected = {
        "ma": set(ids[:4]),
        "m son": {ids[1], ids[2]},
        "ma son": {ids[1], ids[2]},
        "m": {ids[0], ids[1], ids[2], ids[3], ids[5]},
    }
    for q, want in expected.items():
        users, (count,) = found(q)
        assert users == want, q
        hashed = re.search(r"UNION ALL\s+SELECT users\.id", count)
        assert bool(hashed) == (q == "m"), (q, count)
    # A walk of the order tests the ranges row by row up to SEARCH_HASHED_WALK rows (the
    # first page's longer walk, 40,000 rows, among them), past it the ids hashed whole.
    from werkzeug.datastructures import MultiDict

    from lmsweb.user_queries import UserFilters

    def walk(walked: int) -> tuple[str, set[int]]:
        with app.app_context():
            filters = UserFilters.from_args(MultiDict({"q": "ma"}))
            statement = user_queries.searched_page(filters, 0, 51, walked)
            sql = str(statement.compile(db.engine))
            return sql, set(db.session.scalars(statement)) & set(ids)

    sql, found = walk(40_000)
    assert "AS hit" in sql and "UNION ALL" not in sql and found == expected["ma"], sql
    sql, found = walk(user_queries.SEARCH_HASHED_WALK + 1)
    assert "AS hit" in sql and "UNION ALL" in sql and found == expected["ma"], sql
    assert set(listed(admin_client, "q=ma")) & set(ids) == expected["ma"]


@sqlite_only
def test_a_group_at_a_location_walks_the_location_testing_membership(
    app, admin_client, make, monkeypatch
):
    """A group filter beside a location, with enough matches, walks the location's
    name-ordered index testing membership row by row (EXISTS): SQLite otherwise looked up
    every member of the group (84,000 at a million users, 75 ms for the page). Fewer
    matches keep the members' lookup (a small group at a large site). Same rows either way."""
    from lmsweb.blueprints.users import listing

    from .conftest import HX
    from .test_users_list import _forward, listed

    here, there = make.location("Here"), make.location("There")
    team, other = make.group("Team"), make.group("Other")
    for n in range(40):
        make.user(
            last_name=f"Walk{(n * 7) % 40:02d}",
            location_id=(here if n % 3 else there).id,
            groups=[team] if n % 2 else [other],
        )
    query = f"location={here.id}&group={team.id}&per_page=25"
    expected = _forward(app, query)
    assert len(expected) == 13

    def page_plan() -> str:
        with app.app_context():
            seen = captured(app, lambda: admin_client.get(f"/admin/users?{query}", headers=HX))
            (page,) = [
                (s, p) for s, p in seen if "ORDER BY users.last_name" in s and "count(" not in s
            ]
            rows = db.session.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {page[0]}", page[1])
            return " ".join(row[-1] for row in rows)

    monkeypatch.setattr(listing, "LOCAL_WALK_MIN", 10)
    plan = page_plan()
    assert "ix_users_location_name" in plan and "LIST SUBQUERY" not in plan, plan
    assert "TEMP B-TREE" not in plan, plan
    assert listed(admin_client, query) == expected
    monkeypatch.setattr(listing, "LOCAL_WALK_MIN", 14)
    assert "LIST SUBQUERY" in page_plan()
    assert listed(admin_client, query) == expected


@pytest.mark.skipif(not IS_POSTGRES, reason="PostgreSQL's covering index (0014_search_walk)")
def test_a_searched_walk_reads_the_name_index_alone(app, make, monkeypatch):
    """A search walking the name order tests each row from ix_users_name_filters alone: it
    carries the email and user ID the words are looked for in (0014_search_walk). It held
    only the name, so every row walked was read from the table too (40,000 rows walked for
    "rossi" at a million users: 100 → 29 ms)."""
    from werkzeug.datastructures import MultiDict

    from lmsweb.user_queries import UserFilters, searched_page

    for n in range(30):
        make.user(last_name=f"Walk{n:02d}", employee_id=f"E{n:03d}")
    with app.app_context():
        filters = UserFilters.from_args(MultiDict({"q": "e01"}))
        statement = searched_page(filters, 0, 51, 5_000)
        compiled = statement.compile(db.engine)
        connection = db.session.connection()
        # The planner's choice on a few rows would be a sort; ask it for the index.
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        connection.exec_driver_sql("SET LOCAL enable_sort = off")
        connection.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
        plan = "\n".join(
            row[0]
            for row in connection.exec_driver_sql(f"EXPLAIN {compiled.string}", compiled.params)
        )
        assert "Index Only Scan using ix_users_name_filters" in plan, plan
        found = list(db.session.scalars(statement))
    assert len(found) == 10


@pytest.mark.skipif(not IS_POSTGRES, reason="PostgreSQL's stored search text (0017)")
def test_a_search_tests_the_stored_text_not_an_expression_per_row(app, make):
    """PostgreSQL: each row a search reads (the trigram index's matches, all rechecked, and
    the rows of the name order it walks) is tested against `users.search_text`, computed
    when the row was written: lower() and the concatenation cost 0.6 µs a row read (the
    40,000-row walk for "rossi" at a million users: 33-37 → 12 ms)."""
    from werkzeug.datastructures import MultiDict

    from lmsweb.blueprints.users.listing import counted_by_status
    from lmsweb.user_queries import UserFilters, searched_page

    make.user(last_name="Marsh")
    with app.app_context():
        filters = UserFilters.from_args(MultiDict({"q": "arsh"}))
        connection = db.session.connection()
        for statement in (searched_page(filters, 0, 51, 5_000), counted_by_status(filters, 100)):
            compiled = statement.compile(db.engine)
            plan = "\n".join(
                row[0]
                for row in connection.exec_driver_sql(
                    f"EXPLAIN VERBOSE {compiled.string}", compiled.params
                )
            )
            assert "search_text ~~" in plan, plan
            assert "lower(" not in plan, plan


@pytest.mark.skipif(not IS_POSTGRES, reason="PostgreSQL's stored search text (0017)")
def test_every_writer_keeps_the_stored_search_text(app, make):
    """The searched text is a generated column: the ORM, raw SQL inserts and updates and
    COPY (the import's and the seed's writer) all leave it equal to the fields it is made
    of, and a write cannot set it."""
    expected = (
        "lower(first_name || ' ' || last_name || ' ' || email || ' ' || coalesce(employee_id, ''))"
    )
    user = make.user(first_name="Ünal", last_name="Marsh", employee_id=None)
    with app.app_context():
        connection = db.session.connection()
        connection.exec_driver_sql(
            "INSERT INTO users (email, first_name, last_name, employee_id, role, status, "
            "session_version, created_at, wants_digest) VALUES ('Raw@Acme.example', 'Raw', "
            "'Insert', 'E-77', 'learner', 'active', 1, now(), true)"
        )
        connection.exec_driver_sql(
            f"UPDATE users SET email = 'moved@ACME.example' WHERE id = {user.id}"
        )
        cursor = connection.connection.dbapi_connection.cursor()
        with cursor.copy(
            "COPY users (email, first_name, last_name, role, status, session_version, "
            "created_at, wants_digest) FROM STDIN"
        ) as copy:
            copy.write_row(
                ("copied@acme.example", "Cop", "IED", "learner", "active", 1, "2026-01-01", True)
            )
        rows = connection.exec_driver_sql(
            f"SELECT email, search_text, {expected} FROM users ORDER BY id"
        ).all()
        assert [row[1] for row in rows] == [row[2] for row in rows]
        texts = {row[0]: row[1] for row in rows}
        assert texts["moved@ACME.example"] == "ünal marsh moved@acme.example "
        assert texts["Raw@Acme.example"] == "raw insert raw@acme.example e-77"
        assert texts["copied@acme.example"] == "cop ied copied@acme.example "
        with pytest.raises(sa.exc.DBAPIError, match="generated"), connection.begin_nested():
            connection.exec_driver_sql("UPDATE users SET search_text = 'x'")


@sqlite_only
def test_users_found_as_lists_of_ids_are_looked_up_in_the_narrow_index(app, admin_client, make):
    """SQLite: a list narrowed by a search or a group (and status and role) looks each
    match up in ix_users_id_cover, the narrow index of the filtered and sorted columns:
    given statistics its planner read each one's whole row instead ("son" at a million
    users, 80,000 matches: the page 78 → 43 ms). Where another filter or order has an index
    of its own (a location, the archived alone, the email order), the planner chooses."""
    from .conftest import HX
    from .test_users_list import _forward, listed

    team = make.group("Team")
    here = make.location("Here")
    for n in range(30):
        make.user(last_name=f"Marsh{(n * 7) % 30:02d}", groups=[team] if n % 2 else [])
    with app.app_context():
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()

    def statements(query: str) -> list[str]:
        with app.app_context():
            seen = captured(app, lambda: admin_client.get(f"/admin/users?{query}", headers=HX))
        # (A prefix's count first tries its emails alone: see the walk's test below.)
        return [
            s
            for s, _ in seen
            if (s.startswith("SELECT anon_1.status, count(*)") and "ix_users_search_email" not in s)
            or (s.startswith("SELECT users.id \nFROM users") and "LIMIT" in s)
        ]

    for query in ("q=arsh", "q=ma", f"group={team.id}", "q=arsh&sort=-status&role=learner"):
        seen = statements(query)
        # A group alone is counted already (user_counts): its page alone reads users.
        counted = 1 if query.startswith("group") else 2
        assert len(seen) == counted and all("INDEXED BY ix_users_id_cover" in s for s in seen)
        assert listed(admin_client, query) == _forward(app, query)[:50]
    for query in (f"q=arsh&location={here.id}", "q=arsh&status=archived", "q=arsh&sort=email"):
        assert not any("INDEXED BY" in s for s in statements(query)), query


@sqlite_only
def test_a_searchs_trigram_matches_drive_its_count_and_page(app, admin_client, make):
    """SQLite, a search of a word of three letters or more (and status and role): the count
    and the page read the FTS5 table's matches and look each up in ix_users_id_cover once,
    where the planner first listed them whole and then looked each up ("son" at a million
    users: the capped count 13.6 → 5.8 ms, the page 40.5 → 34.7). With a group the members
    drive as before. The same users either way."""
    from .test_users_list import _forward, listed

    team = make.group("Team")
    for n in range(30):
        make.user(
            last_name=f"Marsh{(n * 7) % 30:02d}",
            email=f"marsh{n}@{'acme' if n % 3 else 'other'}.example",
            groups=[team] if n % 2 else [],
        )
    with app.app_context():
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()

    for query in ("q=arsh", "q=acme+arsh&role=learner", "q=m+acme&sort=-name"):
        plans = _plans(app, admin_client, f"/admin/users?{query}", _count_or_page)
        assert len(plans) == 2, plans  # the count, the page
        for plan in plans:
            # The matches first, each user looked up by id; the table read once.
            steps = _steps(plan)
            assert steps[0] == "users_search" and steps.count("users_search") == 1, plan
            assert "SEARCH users USING COVERING INDEX ix_users_id_cover (id=?)" in plan, plan
        assert listed(admin_client, query) == _forward(app, query)[:50]
    plans = _plans(app, admin_client, f"/admin/users?q=arsh&group={team.id}", _count_or_page)
    assert plans and all(_steps(plan)[0] != "users_search" for plan in plans), plans
    assert (
        listed(admin_client, f"q=arsh&group={team.id}")
        == _forward(app, f"q=arsh&group={team.id}")[:50]
    )


@sqlite_only
@pytest.mark.parametrize("sort", ["name", "-name"])
def test_a_one_word_search_past_the_cap_is_looked_for_in_a_walk_first(
    app, admin_client, make, monkeypatch, sort
):
    """SQLite, one word counted past the cap, its index holding many matches: the page is
    looked for in the first rows of the name order's walk (ix_users_name_filters), ended at
    the key of its last row; a walk holding too few (a word of one surname, far down the
    order) falls back to sorting the matches. A prefix's count stops in the emails' index
    once past the cap. The pages are the one ordering's slices either way."""
    from lmsweb import user_queries
    from lmsweb.blueprints.users import listing

    from .test_users_list import _forward, listed

    monkeypatch.setattr(listing, "COUNT_CAP", 5)
    monkeypatch.setattr(user_queries, "SQLITE_WALK_MATCHES", 10)
    monkeypatch.setattr(user_queries, "search_walks", lambda offset, rows, *_: [60])
    for n in range(70):
        dense = n % 7 != 0  # "ma" and "ark": 60 of 70, through the whole order
        make.user(
            first_name="Mark" if dense else "Zed",
            last_name=f"Zrossi{n % 10}" if n >= 40 else f"Name{(n * 11) % 40:02d}",
            email=f"{'ma' if dense else 'zz'}{n}@example.com",
        )

    def seen(query: str) -> list[str]:
        with app.app_context():
            return [s for s, _ in captured(app, lambda: listed(admin_client, query))]

    # "zrossi" and "zr": 30 matches at the end of the name order (the start of its
    # reverse), past the cap on page 1 only (page 2 is counted to its end). A word of three
    # letters or more is walked only where its first matches show the walk holds the page;
    # a prefix is walked, misses, and is sorted.
    far = sort == "-name"
    tries = (("ma", True, (1, 2)), ("ark", True, (1, 2)), ("zrossi", far, (1,)), ("zr", far, (1,)))
    for word, walks, pages in tries:
        for page in pages:
            query = f"q={word}&sort={sort}&per_page=25&page={page}"
            statements = seen(query)
            walk = [s for s in statements if "INDEXED BY ix_users_name_filters" in s]
            # The walk's last key, then the page (unless the matches said it would miss).
            assert len(walk) == (1 if not walks and len(word) >= 3 else 2), statements
            ids = [s for s in statements if s.startswith("SELECT users.id") and "LIMIT" in s]
            sorted_after = [s for s in ids if s not in walk]
            assert bool(sorted_after) != walks, (query, statements)
            assert listed(admin_client, query) == _forward(app, query)[(page - 1) * 25 :][:25]
    counts = [s for s in seen(f"q=ma&sort={sort}") if "count(*)" in s and "GROUP BY" in s]
    assert len(counts) == 1 and "INDEXED BY ix_users_search_email" in counts[0], counts
    # Few matches (under SQLITE_WALK_MATCHES): sorted at once, no walk.
    monkeypatch.setattr(user_queries, "SQLITE_WALK_MATCHES", 1_000)
    assert not [s for s in seen("q=ark") if "ix_users_name_filters" in s]
    assert listed(admin_client, "q=ark") == _forward(app, "q=ark")[:50]


def _count_or_page(statement: str) -> bool:
    """The list's count (by status) or its page of ids."""
    return statement.startswith("SELECT anon_1.status, count(*)") or (
        statement.startswith("SELECT users.id") and "LIMIT" in statement
    )


def _steps(plan: str) -> list[str]:
    """The tables an SQLite plan reads, in its order."""
    return re.findall(r"(?:SCAN|SEARCH) (\w+)", plan)


@sqlite_only
def test_a_location_and_a_group_are_read_from_the_smaller(app, admin_client, make):
    """SQLite, a location and a group: the filter chips' statement reads how many people
    both hold from the kept counts (counting them from their indexes cost 8 ms at a million
    users), and the count and the page read the smaller first: the location's people
    from ix_users_location_name, each tested against the group's members, or the group's
    members looked up in ix_users_id_cover. Given statistics SQLite's planner read every
    member's whole row (Berlin + Sales at a million users: the count 83 → 23 ms). The same
    users either way, in the same number of statements."""
    from .conftest import HX
    from .test_users_list import _forward, listed

    small, large = make.location("Small"), make.location("Large")
    few, many = make.group("Few"), make.group("Many")
    for n in range(40):
        make.user(
            last_name=f"Side{(n * 7) % 40:02d}",
            location_id=(small if n % 4 == 0 else large).id,
            groups=[many, few] if n % 5 == 0 else [many],
        )
    with app.app_context():
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()
    for location, group, index in (
        (small, many, "ix_users_location_name"),  # 10 people, 40 members
        (large, few, "ix_users_id_cover"),  # 30 people, 8 members
    ):
        query = f"location={location.id}&group={group.id}"
        with app.app_context():
            seen = captured(app, lambda q=query: admin_client.get(f"/admin/users?{q}", headers=HX))
        (count,) = [s for s, _ in seen if s.startswith("SELECT anon_1.status, count(*)")]
        assert f"INDEXED BY {index}" in count, count
        (chips,) = [s for s, _ in seen if "FROM locations" in s and " AS size" in s]
        assert "FROM user_counts" in chips, chips
        assert "FROM users" not in chips and "FROM user_groups" not in chips, chips
        assert listed(admin_client, query) == _forward(app, query)
    # With a search, the location read first: only the people the search finds are looked
    # up in the group (its key, per row), not every member listed first.
    query = f"location={small.id}&group={many.id}&q=side"
    plans = _plans(app, admin_client, f"/admin/users?{query}", _count_or_page)
    counted = [p for p in plans if "ix_users_location_name" in p]
    assert len(counted) == 2, plans  # the count, the page
    for plan in counted:
        assert "CORRELATED SCALAR SUBQUERY" in plan, plan
        assert "SEARCH user_groups USING COVERING INDEX" in plan, plan
        assert "(user_id=? AND group_id=?)" in plan and "(group_id=?" not in plan, plan
    assert listed(admin_client, query) == _forward(app, query)
