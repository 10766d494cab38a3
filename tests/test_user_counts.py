"""user_counts (migration 0015_user_counts): how many users of each status and role the
organisation, each location and each group holds, kept by database triggers so that every
writer keeps it right: the forms, SCIM, the import's bulk statements (COPY on PostgreSQL),
the demo seed and raw SQL. After each kind of write the counts must equal those computed
here in Python from the base tables; the Users list shows them as its exact count."""

# ruff: noqa: F811 - the fixtures imported from test_scopes are the tests' parameters
from __future__ import annotations

import multiprocessing
import re
from collections import Counter

import pytest
import sqlalchemy as sa

from lmsweb.extensions import db
from lmsweb.models import User, user_counts, user_groups
from tests.conftest import HX, IS_POSTGRES
from tests.import_support import csv_bytes, job_id, upload
from tests.scim_support import make_token, scim_caller
from tests.test_scim_scope import patch, user_body
from tests.test_scope_members import add_nina, sql
from tests.test_scopes import ada_client, world  # noqa: F401

Key = tuple[str, int, str, str]


def defined(app) -> dict[Key, int]:
    """(kind, ref_id, status, role) → users, counted in Python from the base tables."""
    with app.app_context():
        users = {
            user_id: (location_id, status, role)
            for user_id, location_id, status, role in db.session.execute(
                sa.select(User.id, User.location_id, User.status, User.role)
            )
        }
        counts: Counter = Counter()
        for location_id, status, role in users.values():
            counts["all", 0, status, role] += 1
            if location_id is not None:
                counts["location", location_id, status, role] += 1
        for user_id, group_id in db.session.execute(sa.select(user_groups)):
            _location, status, role = users[user_id]
            counts["group", group_id, status, role] += 1
        return dict(counts)


def stored(app) -> dict[Key, int]:
    """The kept counts, each key's rows summed (PostgreSQL's unmerged rows included)."""
    c = user_counts.c
    with app.app_context():
        rows = db.session.execute(
            sa.select(c.kind, c.ref_id, c.status, c.role, sa.func.sum(c.n)).group_by(
                c.kind, c.ref_id, c.status, c.role
            )
        )
        return {tuple(key): int(n) for *key, n in rows if n}


def assert_kept(app, step: str = "") -> dict[Key, int]:
    expected = defined(app)
    assert stored(app) == expected, step
    return expected


def test_the_migration_fills_the_table_for_existing_data(app, world):
    """Upgraded onto an organisation that already has users, the table counts them (and a
    downgrade takes it and its triggers away)."""
    from flask_migrate import downgrade, upgrade

    before = assert_kept(app)
    assert before["group", world.warehouse.id, "active", "learner"] == 1
    with app.app_context():
        downgrade(revision="0014_search_walk")
        db.session.remove()
        assert "user_counts" not in sa.inspect(db.engine).get_table_names()
    # Written with no triggers to follow it.
    sql(
        app,
        "UPDATE users SET status = 'archived' WHERE id = :walt",
        "INSERT INTO user_groups (user_id, group_id) VALUES (:otto, :warehouse)",
        walt=world.walt.id,
        otto=world.otto.id,
        warehouse=world.warehouse.id,
    )
    with app.app_context():
        upgrade()
        db.session.remove()
    after = assert_kept(app)
    assert after["group", world.warehouse.id, "archived", "learner"] == 1
    assert after["group", world.warehouse.id, "pending", "learner"] == 1


def test_the_forms_keep_them(app, world, ada_client):
    """Add a user, move them, change their groups, role and status through the pages."""
    nina_id, details = add_nina(app, ada_client, world)
    assert_kept(app, "added at Lisbon")
    ada_client.post(f"/admin/users/{nina_id}/groups", data={"group": [world.warehouse.id]})
    assert_kept(app, "joined Warehouse")
    ada_client.post(
        f"/admin/users/{nina_id}",
        data={
            **details,
            "location": world.madrid.id,
            "role": "admin",
            "group": [world.warehouse.id],
        },
    )
    kept = assert_kept(app, "moved to Madrid, made an administrator")
    assert kept["group", world.warehouse.id, "pending", "admin"] == 1
    ada_client.post(f"/admin/users/{nina_id}/approve")
    assert_kept(app, "approved")
    ada_client.post(f"/admin/users/{nina_id}/archive", data={"mode": "user"})
    kept = assert_kept(app, "archived")
    assert kept["location", world.madrid.id, "archived", "admin"] == 1
    ada_client.post(f"/admin/users/{nina_id}/restore")
    assert_kept(app, "restored")
    ada_client.post(f"/admin/users/{nina_id}/groups", data={"group": [world.safety.id]})
    assert_kept(app, "left Warehouse for Safety")


def test_raw_sql_keeps_them(app, world):
    """Every statement the triggers follow, written as SQL with no application code."""
    ids = {
        "lisbon": world.lisbon.id,
        "porto": world.porto.id,
        "warehouse": world.warehouse.id,
        "safety": world.safety.id,
        "board": world.board.id,
        "walt": world.walt.id,
        "lena": world.lena.id,
        "otto": world.otto.id,
    }
    steps = [
        "INSERT INTO users (email, first_name, last_name, role, status, location_id,"
        " session_version, created_at, wants_digest)"
        " VALUES ('raw@example.com', 'Raw', 'Row', 'learner', 'pending', :lisbon, 1,"
        " CURRENT_TIMESTAMP, false)",
        "UPDATE users SET status = 'active', role = 'admin' WHERE email = 'raw@example.com'",
        "UPDATE users SET location_id = :porto WHERE email = 'raw@example.com'",
        "UPDATE users SET location_id = NULL WHERE id = :lena",
        "UPDATE users SET last_name = 'Lisbon' WHERE id = :lena",  # counts nothing
        "UPDATE users SET status = 'archived', location_id = :lisbon WHERE id IN (:lena, :walt)",
        "INSERT INTO user_groups (user_id, group_id) VALUES (:otto, :warehouse)",
        "UPDATE user_groups SET group_id = :safety WHERE user_id = :otto AND group_id = :warehouse",
        "UPDATE user_groups SET user_id = :lena WHERE user_id = :walt AND group_id = :warehouse",
        "UPDATE users SET role = 'admin', status = 'active' WHERE id = :otto",
        "DELETE FROM user_groups WHERE user_id = :otto",
        "INSERT INTO user_groups (user_id, group_id)"
        " SELECT id, :board FROM users WHERE status = 'archived'",
        "DELETE FROM users WHERE email = 'raw@example.com'",
    ]
    for step in steps:
        sql(app, step, **ids)
        assert_kept(app, step)


def test_the_import_keeps_them(app, world, ada_client):
    """The import's bulk writes (INSERT ... SELECT on SQLite, COPY and UPDATE ... FROM on
    PostgreSQL): new users with groups, one moved, groups replaced."""
    rows = [
        ["new.lisbon@example.com", "New", "Lisbon", "", "Lisbon", ""],
        ["new.porto@example.com", "New", "Porto", "", "Porto", "Warehouse"],
        ["new.madrid@example.com", "New", "Madrid", "", "Madrid", "Board;Safety"],
        ["lena@example.com", "Lena", "Lisboa", "", "Madrid", "Board"],
    ]
    preview = upload(ada_client, "roster.csv", csv_bytes(rows))
    done = ada_client.post(f"/admin/users/import/{job_id(preview)}/confirm")
    assert done.status_code == 303, done.text
    kept = assert_kept(app, "imported")
    assert kept["location", world.madrid.id, "pending", "learner"] == 3  # Otto, Lena, new


def test_scim_keeps_them(app, world, client):
    """A directory creates users, moves them, changes group membership, deactivates."""
    token = make_token(app)
    scim = scim_caller(client, token)

    created = scim("POST", "/Users", user_body("dir@example.com", "Porto")).get_json()
    assert_kept(app, "created at Porto")
    scim("PUT", f"/Users/{created['id']}", user_body("dir@example.com", "Lisbon"))
    assert_kept(app, "moved to Lisbon")
    group = world.warehouse.id
    scim(
        "PATCH",
        f"/Groups/{group}",
        patch({"op": "add", "path": "members", "value": [{"value": created["id"]}]}),
    )
    assert_kept(app, "added to Warehouse")
    scim("PATCH", f"/Users/{created['id']}", patch({"op": "replace", "value": {"active": False}}))
    assert_kept(app, "deactivated")
    scim("PATCH", f"/Groups/{group}", patch({"op": "remove", "path": "members"}))
    assert_kept(app, "Warehouse emptied")


def test_the_demo_seed_keeps_them(app, monkeypatch):
    """The seed's bulk load (its insert triggers set aside, the counts made once after)
    and its row-by-row path."""
    from lmsweb import seed

    with app.app_context():
        seed.seed_demo(40)
        db.session.commit()
    assert_kept(app, "seeded row by row")
    monkeypatch.setattr(seed, "BULK_FROM", 10)
    with app.app_context():
        seed.seed_demo(60)
        db.session.commit()
    kept = assert_kept(app, "seeded in bulk")
    assert sum(n for (kind, *_rest), n in kept.items() if kind == "all") == 100
    if not IS_POSTGRES:
        return
    with app.app_context():  # the triggers are back
        disabled = db.session.scalar(
            sa.text(
                "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'user_counts_%'"
                " AND tgenabled = 'D'"
            )
        )
    assert disabled == 0


def test_check_reports_drift_and_repairs_it(app, world, runner):
    """`flask lms check` compares the counts with the users; --repair rewrites them."""
    result = runner.invoke(args=["lms", "check"])
    assert result.exit_code == 0, result.output
    assert "The kept user counts agree with the users." in result.output
    # Written to the table itself, which no trigger follows.
    sql(
        app,
        "UPDATE user_counts SET n = n + 2 WHERE kind = 'group' AND ref_id = :warehouse",
        warehouse=world.warehouse.id,
    )
    result = runner.invoke(args=["lms", "check"])
    assert result.exit_code == 1, result.output
    assert f"COUNT group {world.warehouse.id} active learner: kept 3, the users say 1" in (
        result.output
    )
    result = runner.invoke(args=["lms", "check", "--repair"])
    assert result.exit_code == 0, result.output
    assert_kept(app, "repaired")
    assert runner.invoke(args=["lms", "check"]).exit_code == 0


def test_the_worker_merges_each_keys_rows(app, world, make):
    """PostgreSQL appends a row per write; the worker's pass sums each key's rows into one
    and drops the keys that count nobody (SQLite's upserts leave one row a key already)."""
    from lmsweb import worker

    for n in range(5):
        make.learner(email=f"l{n}@example.com", location_id=world.porto.id, groups=[world.board])
    sql(app, "UPDATE users SET status = 'archived' WHERE email LIKE 'l_@example.com'")
    c = user_counts.c
    key = sa.and_(c.kind == "group", c.ref_id == world.board.id, c.status == "active")

    def rows() -> list[int]:
        with app.app_context():
            return list(db.session.scalars(sa.select(c.n).where(key)))

    # Five links added and five learners archived: a row each and one for the five on
    # PostgreSQL, one row on SQLite.
    assert len(rows()) > 1 if IS_POSTGRES else rows() == [0]
    before = assert_kept(app)
    with app.app_context():
        worker.run_once()
    assert stored(app) == before
    assert rows() == []  # the archived left the key at none
    with app.app_context():
        per_key = db.session.scalars(
            sa.select(sa.func.count())
            .select_from(user_counts)
            .group_by(c.kind, c.ref_id, c.status, c.role)
        ).all()
        zero = db.session.scalar(sa.select(sa.func.count()).where(c.n == 0))
    assert per_key and set(per_key) == {1} and zero == 0


def counted_list(admin_client, query: str) -> tuple[str, list[str]]:
    """The list's "N users" line, and the statements that counted it."""
    from tests.test_query_plans import captured

    page = []
    seen = captured(
        admin_client.application,
        lambda: page.append(admin_client.get(f"/admin/users?{query}", headers=HX).text),
    )
    line = re.search(r'id="users-count"[^>]*>([^<]*)<', page[0]).group(1)
    # Counting statements: of rows, or the kept counts by status (the users' total a dense
    # search reads, `user_counts.everyone`, counts nothing the list shows).
    return line, [s for s, _ in seen if "count(" in s.lower() or "GROUP BY user_counts.status" in s]


def test_the_list_shows_the_kept_counts_exactly(app, admin_client, make, monkeypatch):
    """Past the count cap, a list of no more than status, role and one location or group
    says exactly how many it holds, read from the kept counts: no statement counts users.
    Other filters (two groups, a location and a group, a search) count their rows (up to the
    cap: `test_users_list.py::test_count_stops_at_the_cap_and_says_more_than`)."""
    from lmsweb.blueprints.users import listing

    monkeypatch.setattr(listing, "COUNT_CAP", 5)
    here, there = make.location("Here"), make.location("There")
    team, crew = make.group("Team"), make.group("Crew")
    for n in range(12):
        make.learner(
            email=f"p{n}@example.com",
            location_id=here.id if n % 3 else there.id,
            groups=[team] if n % 2 else [crew],
            status="pending" if n % 4 == 0 else "active",
        )
    expected = {
        "": "13 users",  # and the administrator
        "status=pending": "3 users match these filters",
        "role=learner": "12 users match these filters",
        f"location={here.id}": "8 users match these filters",
        f"group={team.id}&status=active": "6 users match these filters",
        f"group={team.id}&status=active&status=pending&status=archived": (
            "6 users match these filters"
        ),
        "status=archived": "0 users match these filters",
    }
    with app.app_context():
        for query, line in expected.items():
            shown, counts = counted_list(admin_client, query)
            assert shown == line, query
            assert counts and all("user_counts" in s for s in counts), (query, counts)
        for query, line in (
            (f"group={team.id}&group={crew.id}", "12 users match these filters"),
            (f"location={here.id}&group={team.id}", "4 users match these filters"),
            ("q=example", "13 users match these filters"),
        ):
            shown, counts = counted_list(admin_client, query)
            assert shown == line, query
            assert counts and not any("user_counts" in s for s in counts), query
    # The counts per status serve the export links too.
    page = admin_client.get("/admin/users", headers=HX).text
    assert "Export 10 active users</a>" in page


@pytest.mark.skipif(not IS_POSTGRES, reason="concurrent writers: PostgreSQL")
@pytest.mark.parametrize("first", ["status", "link"])
def test_a_status_change_and_a_new_link_at_once_are_both_counted(app, world, first):
    """Two processes: one archives Walt, the other adds him to Board, each in a transaction
    the other overlaps. Unlocked, the link would be counted with his status before the
    archive (which could not see the link): the link's trigger reads his row FOR SHARE, so
    it waits for the archive, or the archive for it."""
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    statements = {
        "status": "UPDATE users SET status = 'archived' WHERE id = :walt",
        "link": "INSERT INTO user_groups (user_id, group_id) VALUES (:walt, :board)",
    }
    second = "link" if first == "status" else "status"
    params = {"walt": world.walt.id, "board": world.board.id}
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    answers = ctx.Queue()
    processes = [
        ctx.Process(target=_write, args=(url, statements[first], params, barrier, answers, True)),
        ctx.Process(target=_write, args=(url, statements[second], params, barrier, answers, False)),
    ]
    for process in processes:
        process.start()
    results = [answers.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    assert results == ["ok", "ok"], results
    kept = assert_kept(app, f"{first} first")
    assert kept["group", world.board.id, "archived", "learner"] == 1


def _write(url: str, statement: str, params: dict, barrier, answers, first: bool) -> None:
    """A process: the first writes, meets the other at the barrier and holds its transaction
    open a moment; the second writes once the first has."""
    import time

    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            if first:
                conn.execute(sa.text(statement), params)
                barrier.wait(timeout=30)
                time.sleep(0.5)  # the other's statement runs meanwhile
            else:
                barrier.wait(timeout=30)
                conn.execute(sa.text(statement), params)
            conn.commit()
        answers.put("ok")
    except Exception as error:  # noqa: BLE001 - reported to the test
        answers.put(repr(error))
    finally:
        engine.dispose()
