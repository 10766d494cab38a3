"""scope_members (migration 0013_scope_members): who each administrator scope (and scoped SCIM
token) reaches, kept by database triggers, so that every writer keeps it right: the forms,
SCIM, the import's bulk statements (COPY on PostgreSQL), scope changes and raw SQL. After
each kind of write the table must equal the scope's definition (a user at one of its
locations or in one of its groups), computed here in Python from the base tables."""

# ruff: noqa: F811 - the fixtures imported from test_scopes are the tests' parameters
from __future__ import annotations

from collections import defaultdict

import pytest
import sqlalchemy as sa

from lmsweb.extensions import db
from lmsweb.models import (
    Location,
    Scope,
    User,
    scope_groups,
    scope_locations,
    scope_members,
    user_groups,
)
from tests.conftest import HX, IS_POSTGRES
from tests.import_support import csv_bytes, job_id, upload
from tests.scim_support import make_scoped_token, make_token, scim_caller
from tests.test_scim_scope import patch, user_body

# The scope tests' organisation (Lisbon + Warehouse scoped) and its clients, as fixtures.
from tests.test_scopes import ada_client, sam_client, scope_admin, world  # noqa: F401


def defined(app) -> set[tuple[int, int, str, str]]:
    """(scope, user, status, role) for every user each scope reaches, from the base tables."""
    with app.app_context():
        users = db.session.execute(sa.select(User.id, User.location_id, User.status, User.role))
        groups_of: dict[int, set[int]] = defaultdict(set)
        for user_id, group_id in db.session.execute(sa.select(user_groups)):
            groups_of[user_id].add(group_id)
        locations: dict[int, set[int]] = defaultdict(set)
        for scope_id, location_id in db.session.execute(sa.select(scope_locations)):
            locations[scope_id].add(location_id)
        groups: dict[int, set[int]] = defaultdict(set)
        for scope_id, group_id in db.session.execute(sa.select(scope_groups)):
            groups[scope_id].add(group_id)
        scopes = list(db.session.scalars(sa.select(Scope.id)))
        return {
            (scope_id, user_id, status, role)
            for user_id, location_id, status, role in users
            for scope_id in scopes
            if location_id in locations[scope_id] or groups_of[user_id] & groups[scope_id]
        }


def stored(app) -> set[tuple[int, int, str, str]]:
    with app.app_context():
        return {tuple(row) for row in db.session.execute(sa.select(scope_members))}


def assert_kept(app, step: str = "") -> set:
    expected = defined(app)
    assert stored(app) == expected, step
    return expected


def sql(app, *statements: str, **params) -> None:
    with app.app_context():
        for statement in statements:
            db.session.execute(sa.text(statement), params)
        db.session.commit()


def test_the_migration_fills_the_table_for_existing_data(app, world):
    """Upgraded onto an organisation that already has scopes, the table holds their people
    (and a downgrade takes it and its triggers away)."""
    from flask_migrate import downgrade, upgrade

    before = assert_kept(app)
    assert {user for _s, user, _st, _r in before} >= {world.lena.id, world.walt.id, world.ola.id}
    with app.app_context():
        downgrade(revision="0012_figures")
        db.session.remove()
        assert "scope_members" not in sa.inspect(db.engine).get_table_names()
    # Written with no triggers to follow it.
    sql(
        app,
        "UPDATE users SET location_id = :porto WHERE id = :lena",
        "INSERT INTO user_groups (user_id, group_id) VALUES (:otto, :warehouse)",
        porto=world.porto.id,
        lena=world.lena.id,
        otto=world.otto.id,
        warehouse=world.warehouse.id,
    )
    with app.app_context():
        upgrade()
        db.session.remove()
    after = assert_kept(app)
    people = {user for _s, user, _st, _r in after}
    assert world.otto.id in people and world.lena.id not in people


def add_nina(app, ada_client, world) -> tuple[int, dict]:
    """Nina, a learner at Lisbon, added through the form: her id, and her details as the
    edit form posts them."""
    response = ada_client.post(
        "/admin/users/new",
        data={
            "first_name": "Nina",
            "last_name": "New",
            "email": "nina@example.com",
            "location": world.lisbon.id,
            "role": "learner",
        },
    )
    assert response.status_code in (200, 303), response.text
    with app.app_context():
        nina = db.session.scalar(sa.select(User).where(User.email == "nina@example.com"))
        details = {
            "first_name": nina.first_name,
            "last_name": nina.last_name,
            "email": nina.email,
            "user_id": "",
            "role": "learner",
        }
        return nina.id, details


def test_the_forms_keep_it(app, world, ada_client):
    """Add a user, change their location, groups and status through the pages."""
    nina_id, details = add_nina(app, ada_client, world)
    assert_kept(app, "added at Lisbon")
    assert any(user == nina_id for _s, user, _st, _r in stored(app))
    ada_client.post(f"/admin/users/{nina_id}", data={**details, "location": world.madrid.id})
    assert_kept(app, "moved to Madrid")
    assert not any(user == nina_id for _s, user, _st, _r in stored(app))
    ada_client.post(f"/admin/users/{nina_id}/groups", data={"group": [world.warehouse.id]})
    assert_kept(app, "joined Warehouse")
    ada_client.post(f"/admin/users/{nina_id}/approve")
    assert_kept(app, "approved")
    ada_client.post(f"/admin/users/{nina_id}/archive", data={"mode": "user"})
    kept = assert_kept(app, "archived")
    assert any(user == nina_id and status == "archived" for _s, user, status, _r in kept)
    ada_client.post(f"/admin/users/{nina_id}/restore")
    assert_kept(app, "restored")
    ada_client.post(f"/admin/users/{nina_id}/groups", data={"group": [world.safety.id]})
    assert_kept(app, "left Warehouse for Safety")
    assert not any(user == nina_id for _s, user, _st, _r in stored(app))


def test_scope_changes_keep_it(app, world, make):
    """A scope set, changed (the old scope row goes, CASCADE) and emptied."""
    assert_kept(app, "Lisbon + Warehouse")
    scope_admin(app, world.sam, [world.porto], [world.board])
    kept = assert_kept(app, "Porto + Board")
    assert {user for _s, user, _st, _r in kept} >= {world.walt.id, world.otto.id}
    admin = make.admin(email="second@example.com")
    scope_admin(app, admin, [world.madrid], [])
    assert_kept(app, "a second scope")
    scope_admin(app, world.sam, [], [])  # organisation-wide again: the scope goes
    assert_kept(app, "one scope left")
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Scope)) == 1


def test_raw_sql_keeps_it(app, world):
    """Every statement the triggers follow, written as SQL with no application code."""
    ids = {
        "lisbon": world.lisbon.id,
        "porto": world.porto.id,
        "madrid": world.madrid.id,
        "warehouse": world.warehouse.id,
        "safety": world.safety.id,
        "board": world.board.id,
        "walt": world.walt.id,
        "lena": world.lena.id,
        "otto": world.otto.id,
    }
    with app.app_context():
        scope_id = db.session.scalar(sa.select(User.scope_id).where(User.id == world.sam.id))
    ids["scope"] = scope_id
    steps = [
        "INSERT INTO users (email, first_name, last_name, role, status, location_id,"
        " session_version, created_at, wants_digest)"
        " VALUES ('raw@example.com', 'Raw', 'Row', 'learner', 'pending', :lisbon, 1,"
        " CURRENT_TIMESTAMP, false)",
        "UPDATE users SET status = 'active', role = 'admin' WHERE email = 'raw@example.com'",
        "UPDATE users SET location_id = :porto WHERE email = 'raw@example.com'",
        "UPDATE users SET location_id = NULL WHERE id = :lena",
        "UPDATE users SET location_id = :lisbon WHERE id = :lena",
        "INSERT INTO user_groups (user_id, group_id) VALUES (:otto, :warehouse)",
        "UPDATE user_groups SET group_id = :safety WHERE user_id = :otto AND group_id = :warehouse",
        "UPDATE user_groups SET group_id = :board WHERE user_id = :walt AND group_id = :warehouse",
        "DELETE FROM user_groups WHERE user_id = :walt",
        "INSERT INTO user_groups (user_id, group_id) VALUES (:walt, :warehouse)",
        # Walt is in scope twice over (Porto, Warehouse): leaving one way keeps him.
        "INSERT INTO scope_locations (scope_id, location_id) VALUES (:scope, :porto)",
        "DELETE FROM user_groups WHERE user_id = :walt AND group_id = :warehouse",
        "INSERT INTO scope_groups (scope_id, group_id) VALUES (:scope, :board)",
        "UPDATE scope_locations SET location_id = :madrid"
        " WHERE scope_id = :scope AND location_id = :porto",
        "DELETE FROM scope_locations WHERE scope_id = :scope AND location_id = :madrid",
        "UPDATE scope_groups SET group_id = :safety WHERE scope_id = :scope AND group_id = :board",
        "DELETE FROM scope_groups WHERE scope_id = :scope AND group_id = :safety",
        "DELETE FROM users WHERE email = 'raw@example.com'",
        "DELETE FROM scope_locations WHERE scope_id = :scope",
        "INSERT INTO scope_locations (scope_id, location_id) VALUES (:scope, :lisbon)",
    ]
    for step in steps:
        sql(app, step, **ids)
        assert_kept(app, step)
    assert {user for _s, user, _st, _r in stored(app)} == {world.lena.id, world.ola.id}
    sql(app, "UPDATE users SET scope_id = NULL WHERE scope_id = :scope", **ids)
    sql(app, "DELETE FROM scopes WHERE id = :scope", **ids)
    assert assert_kept(app, "scope deleted") == set()


def test_the_import_keeps_it(app, world, ada_client):
    """The import's bulk writes (INSERT ... SELECT on SQLite, COPY and UPDATE ... FROM on
    PostgreSQL): new users into a scope by location and by group, one moved out of it and
    one moved in, groups replaced."""
    rows = [
        ["new.lisbon@example.com", "New", "Lisbon", "", "Lisbon", ""],
        ["new.porto@example.com", "New", "Porto", "", "Porto", "Warehouse"],
        ["new.madrid@example.com", "New", "Madrid", "", "Madrid", "Board"],
        ["lena@example.com", "Lena", "Lisboa", "", "Madrid", "Board"],
        ["otto@example.com", "Otto", "Outsider", "", "Lisbon", ""],
    ]
    preview = upload(ada_client, "roster.csv", csv_bytes(rows))
    done = ada_client.post(f"/admin/users/import/{job_id(preview)}/confirm")
    assert done.status_code == 303, done.text
    kept = assert_kept(app, "imported")
    people = {user for _s, user, _st, _r in kept}
    assert world.otto.id in people and world.lena.id not in people
    with app.app_context():
        created = set(
            db.session.scalars(sa.select(User.id).where(User.email.like("new.%@example.com")))
        )
    assert len(created) == 3 and len(created & people) == 2


def test_scim_keeps_it(app, world, client):
    """A directory creates users, moves them and changes group membership."""
    token = make_token(app)
    scoped_token = make_scoped_token(app, "Porto directory", ["Porto"], [])
    assert_kept(app, "a scoped token's scope")
    scim = scim_caller(client, token)

    created = scim("POST", "/Users", user_body("dir@example.com", "Porto")).get_json()
    assert_kept(app, "created at Porto")
    scim("PUT", f"/Users/{created['id']}", user_body("dir@example.com", "Lisbon"))
    assert_kept(app, "moved to Lisbon")
    group = world.warehouse.id
    scim(
        "PATCH",
        f"/Groups/{group}",
        patch({"op": "add", "path": "members", "value": [{"value": str(world.otto.id)}]}),
    )
    assert_kept(app, "Otto added to Warehouse")
    scim("PATCH", f"/Groups/{group}", patch({"op": "remove", "path": "members"}))
    kept = assert_kept(app, "Warehouse emptied")
    assert world.otto.id not in {user for _s, user, _st, _r in kept}
    scim("PATCH", f"/Users/{created['id']}", patch({"op": "replace", "value": {"active": False}}))
    assert_kept(app, "deactivated")
    assert scoped_token


def test_check_reports_drift_and_repairs_it(app, world, runner):
    """`flask lms check` compares the table with the scopes' definition; --repair rewrites
    a drifted scope's rows."""
    result = runner.invoke(args=["lms", "check"])
    assert result.exit_code == 0, result.output
    assert "Scope members agree" in result.output
    with app.app_context():
        scope_id = db.session.scalar(sa.select(User.scope_id).where(User.id == world.sam.id))
    # Written to the table itself, which no trigger follows.
    sql(
        app,
        "DELETE FROM scope_members WHERE user_id = :walt",
        "UPDATE scope_members SET status = 'archived' WHERE user_id = :lena",
        "INSERT INTO scope_members (scope_id, user_id, status, role)"
        " VALUES (:scope, :otto, 'pending', 'learner')",
        walt=world.walt.id,
        lena=world.lena.id,
        otto=world.otto.id,
        scope=scope_id,
    )
    result = runner.invoke(args=["lms", "check"])
    assert result.exit_code == 1, result.output
    assert (
        f"SCOPE {scope_id}: 1 missing [{world.walt.id}], 1 extra [{world.otto.id}], "
        f"1 with a stale status or role [{world.lena.id}]"
    ) in result.output
    result = runner.invoke(args=["lms", "check", "--repair"])
    assert result.exit_code == 0, result.output
    assert_kept(app, "repaired")
    assert runner.invoke(args=["lms", "check"]).exit_code == 0


@pytest.mark.skipif(not IS_POSTGRES, reason="concurrent writers: PostgreSQL")
def test_concurrent_removals_of_a_users_last_two_ways_in_leave_no_stale_row(app, world, make):
    """Two transactions each remove one of a user's two groups of a scope at once: each
    alone would see the other group still there and keep the row. The trigger locks the
    user's row first, so the second sees the first's removal."""
    import threading
    import time

    scope_admin(app, world.sam, [], [world.warehouse, world.board])
    both = make.learner(email="both@example.com", groups=[world.warehouse, world.board])
    assert any(user == both.id for _s, user, _st, _r in assert_kept(app))
    with app.app_context():
        engine = db.engine
    started = threading.Barrier(2)
    errors: list[BaseException] = []

    def remove(group_id: int, first: bool) -> None:
        try:
            with engine.connect() as conn:
                if first:
                    conn.execute(
                        sa.text("DELETE FROM user_groups WHERE user_id = :u AND group_id = :g"),
                        {"u": both.id, "g": group_id},
                    )
                    started.wait(timeout=10)
                    time.sleep(0.5)  # the other removal runs meanwhile
                else:
                    started.wait(timeout=10)
                    conn.execute(
                        sa.text("DELETE FROM user_groups WHERE user_id = :u AND group_id = :g"),
                        {"u": both.id, "g": group_id},
                    )
                conn.commit()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [
        threading.Thread(target=remove, args=(world.warehouse.id, True)),
        threading.Thread(target=remove, args=(world.board.id, False)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    kept = assert_kept(app, "both removed at once")
    assert both.id not in {user for _s, user, _st, _r in kept}


@pytest.mark.skipif(not IS_POSTGRES, reason="concurrent writers: PostgreSQL")
def test_a_user_moving_into_a_location_as_a_scope_gains_it_is_not_missed(app, world, make):
    """A scope gains a location while, at once, someone moves there: the scope's insert does
    not see the move, the move does not see the scope's new location. The scope's change
    locks users against writers until it commits, so the move's trigger sees it."""
    import threading
    import time

    mover = make.learner(email="mover@example.com", location_id=world.madrid.id)
    with app.app_context():
        engine = db.engine
        scope_id = db.session.scalar(sa.select(User.scope_id).where(User.id == world.sam.id))
    started = threading.Barrier(2)
    errors: list[BaseException] = []

    def gain() -> None:
        try:
            with engine.connect() as conn:
                conn.execute(
                    sa.text("INSERT INTO scope_locations (scope_id, location_id) VALUES (:s, :l)"),
                    {"s": scope_id, "l": world.madrid.id},
                )
                started.wait(timeout=10)
                time.sleep(0.5)  # the move runs meanwhile
                conn.commit()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    def move() -> None:
        try:
            with engine.connect() as conn:
                started.wait(timeout=10)
                conn.execute(
                    sa.text("UPDATE users SET location_id = :l WHERE id = :u"),
                    {"l": world.madrid.id, "u": mover.id},
                )
                conn.commit()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    # The mover starts in Madrid; moving "to Madrid" again would change nothing: first away.
    sql(app, "UPDATE users SET location_id = :p WHERE id = :u", p=world.porto.id, u=mover.id)
    threads = [threading.Thread(target=gain), threading.Thread(target=move)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    kept = assert_kept(app, "moved in as the scope gained the location")
    assert mover.id in {user for _s, user, _st, _r in kept}


def test_the_scoped_list_reads_scope_members(app, world, sam_client):
    """The scoped list's count reads scope_members alone, and its page tests membership
    there (no OR of the scope's locations and groups)."""
    from tests.test_query_plans import captured

    with app.app_context():
        seen = captured(app, lambda: sam_client.get("/admin/users", headers={"HX-Request": "true"}))
    counts = [s for s, _p in seen if "count(*)" in s]
    assert counts and all("FROM scope_members" in s and "FROM users" not in s for s in counts)
    listed = [s for s, _p in seen if "FROM users" in s and "scope_members" in s]
    assert listed
    assert not [s for s, _p in seen if "scope_locations" in s and "FROM users" in s]


@pytest.mark.parametrize("sort", ["name", "-email"])
def test_a_far_page_tests_the_scope_against_its_members_read_once(
    app, world, make, sam_client, monkeypatch, sort
):
    """A page far down a scoped list past the count's cap is walked testing each row against
    the scope's members read once (PostgreSQL: a hashed subquery, `IS true`): every page
    holds the rows of the one ordering all the same."""
    import re

    from werkzeug.datastructures import MultiDict

    from lmsweb.blueprints.users import listing
    from lmsweb.user_queries import UserFilters, filtered_users, ordered
    from tests.test_query_plans import captured
    from tests.test_scopes import _crowd, _ids_in_scope

    monkeypatch.setattr(listing, "COUNT_CAP", 5)
    monkeypatch.setattr(listing, "FAR_WALK", 20)
    _crowd(make, world)
    with app.app_context():
        filters = UserFilters.from_args(MultiDict([("sort", sort)]))
        everyone = db.session.scalars(
            ordered(filtered_users(filters).with_only_columns(User.id), sort)
        ).all()
        archived = set(db.session.scalars(sa.select(User.id).where(User.status == "archived")))
    in_scope = _ids_in_scope(app, world)
    expected = [i for i in everyone if i in in_scope and i not in archived]
    assert len(expected) > 50
    shown, statements = [], []
    for page in range(1, len(expected) // 25 + 2):
        url = f"/admin/users?sort={sort}&per_page=25&page={page}"
        with app.app_context():
            seen = captured(app, lambda url=url: shown.append(sam_client.get(url, headers=HX)))
        statements += [s for s, _p in seen if "scope_members" in s and "ORDER BY" in s]
    ids = [int(i) for r in shown for i in re.findall(r'<tr id="user-(\d+)"', r.text)]
    assert ids == expected
    hashed = [s for s in statements if "IS true" in s]
    assert bool(hashed) == IS_POSTGRES, statements


def test_the_demo_seed_keeps_it(app, make, monkeypatch):
    """The seed's bulk path (SQLite: secondary indexes dropped and built again after the
    rows) into an organisation that has a scope."""
    from lmsweb import seed
    from lmsweb.models import Group, Location

    with app.app_context():
        seed.seed_demo(120)
        db.session.commit()
        location = db.session.scalar(sa.select(Location).order_by(Location.id))
        group = db.session.scalar(sa.select(Group).order_by(Group.id))
    admin = make.admin(email="seeded.scope@example.com")
    scope_admin(app, admin, [location], [group])
    before = assert_kept(app, "scoped after a first seed")
    monkeypatch.setattr(seed, "BULK_FROM", 1)
    with app.app_context():
        seed.seed_demo(300)
        db.session.commit()
    after = assert_kept(app, "a second seed, in bulk")
    assert len(after) > len(before)


@pytest.mark.skipif(not IS_POSTGRES, reason="PostgreSQL's planner statistics")
def test_a_new_scope_brings_the_planners_statistics_up_to_date(app, world, make):
    """A scope set (for an administrator, or a SCIM token) fills `scope_members` at once;
    the planner's row count of it is taken again in the same transaction, not at
    autovacuum's next pass (a new scope's Dashboard at a million users: 245 → 35 ms)."""
    from lmsweb import scim_tokens

    def planned_rows() -> float:
        with app.app_context():
            return db.session.scalar(
                sa.text("SELECT reltuples FROM pg_class WHERE relname = 'scope_members'")
            )

    for n in range(30):
        make.user(email=f"porto{n}@example.com", location_id=world.porto.id)
    admin = make.admin(email="second@example.com")
    scope_admin(app, admin, [world.porto], [])
    assert planned_rows() == len(stored(app))
    with app.app_context():
        places = [db.session.get(Location, x.id) for x in (world.porto, world.madrid)]
        scim_tokens.create("Porto directory", None, locations=places)
        db.session.commit()
    assert planned_rows() == len(stored(app))
