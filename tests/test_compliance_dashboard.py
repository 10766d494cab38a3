"""Dashboard compliance by group, location and manager; each figure's link lists exactly the
people it counts; the weekly digest to administrators who ask for it."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa
import time_machine

from lmsweb.extensions import db
from lmsweb.models import AuditEvent, CourseAssignment, OutboundEmail, User
from tests.conftest import count, get, login


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


# --- a large organisation: the figures are snapshots (lmsweb/figures.py) -------------------


def figure(html: str, dimension: str, ident: int, name: str) -> int:
    row = re.search(rf'<tr id="compliance-{dimension}-{ident}">(.*?)</tr>', html, flags=re.S)
    return int(re.search(rf'data-figure="{name}"><a href="[^"]+">(\d+) ', row.group(1)).group(1))


def overdue_tile(html: str) -> int:
    return int(re.search(r'id="dash-overdue">(\d+)<', html).group(1))


@pytest.fixture
def large(app):
    """Every organisation counts as large: the dashboard reads snapshots."""
    app.config["FIGURES_LIVE_MAX_USERS"] = 0
    return app


def test_a_large_organisation_shows_a_snapshot_as_of_its_time_never_a_guess(
    large, admin_client, make
):
    nurses = make.group("Nurses")
    course = make.course("SAFE")
    late = make.user(groups=[nurses])
    make.assignment(late, course, due=date.today() - timedelta(days=2))
    page = admin_client.get("/admin/dashboard").text
    assert 'id="figures-missing"' in page and 'id="dash-compliance"' not in page
    assert 'id="dash-overdue"' not in page  # no number until one has been counted

    assert admin_client.post("/admin/dashboard/figures").status_code == 303
    page = admin_client.get("/admin/dashboard").text
    assert 'id="figures-as-of"' in page and 'id="figures-other-day"' not in page
    assert figure(page, "group", nurses.id, "overdue") == 1 and overdue_tile(page) == 1

    # A write after the snapshot: the page still says what it counted, and when.
    make.assignment(make.user(groups=[nurses]), course, due=date.today() - timedelta(days=1))
    page = admin_client.get("/admin/dashboard").text
    assert figure(page, "group", nurses.id, "overdue") == 1 and 'id="figures-as-of"' in page
    # The records below are read from the records themselves, always.
    assert "2 training records" in admin_client.get("/admin/dashboard?state=overdue").text


def test_the_worker_recounts_a_snapshot_once_it_is_old(large, admin_client, make, runner):
    course = make.course("SAFE")
    oslo = make.location("Oslo")
    make.assignment(make.user(location_id=oslo.id), course, due=date.today() - timedelta(days=1))
    assert runner.invoke(args=["lms", "worker", "--once"]).exit_code == 0
    assert figure(admin_client.get("/admin/dashboard").text, "location", oslo.id, "overdue") == 1
    make.assignment(make.user(location_id=oslo.id), course, due=date.today() - timedelta(days=1))
    result = runner.invoke(args=["lms", "worker", "--once"])
    assert "Dashboard figures recounted" not in result.output  # fresh: not recounted
    assert figure(admin_client.get("/admin/dashboard").text, "location", oslo.id, "overdue") == 1
    with time_machine.travel(datetime.now() + timedelta(minutes=16), tick=False):
        result = runner.invoke(args=["lms", "worker", "--once"])
    assert "Dashboard figures recounted for 1 audiences" in result.output
    assert figure(admin_client.get("/admin/dashboard").text, "location", oslo.id, "overdue") == 2


def test_a_day_passing_makes_records_overdue_and_expired_without_any_write(
    large, app, admin, make, runner
):
    admin_client = app.test_client()
    course = make.course("SAFE")
    oslo = make.location("Oslo")
    monday, tuesday = date(2026, 3, 2), date(2026, 3, 3)
    due = make.user(location_id=oslo.id)
    make.assignment(due, course, due=monday)  # due Monday: overdue from Tuesday
    renewed = make.user(location_id=oslo.id)
    done = make.assignment(renewed, course, state="completed")
    with app.app_context():
        db.session.execute(
            sa.update(CourseAssignment)
            .where(CourseAssignment.id == done.id)
            .values(expires_on=tuesday)
        )
        db.session.commit()
    with at(monday):
        login(admin_client, admin.email)
        assert (
            runner.invoke(args=["lms", "worker", "--once", "--now", "2026-03-02T07:00"]).exit_code
            == 0
        )
        page = admin_client.get("/admin/dashboard").text
    assert figure(page, "location", oslo.id, "overdue") == 0
    assert figure(page, "location", oslo.id, "expired") == 0
    with at(tuesday):
        login(admin_client, admin.email)
        page = admin_client.get("/admin/dashboard").text
        # Monday's figures, and the page says they are Monday's.
        assert (
            'id="figures-other-day"' in page and figure(page, "location", oslo.id, "overdue") == 0
        )
        result = runner.invoke(args=["lms", "figures"])
        assert (
            result.exit_code == 0
            and "Counted the figures of the organisation and 0" in result.output
        )
        page = admin_client.get("/admin/dashboard").text
    assert 'id="figures-other-day"' not in page
    assert figure(page, "location", oslo.id, "overdue") == 1
    assert figure(page, "location", oslo.id, "expired") == 1


def test_a_scoped_administrator_never_sees_the_organisations_snapshot(
    large, app, admin_client, make
):
    from tests.test_scopes import scope_admin

    lisbon, madrid = make.location("Lisbon"), make.location("Madrid")
    course = make.course("SAFE")
    sam = make.admin(first_name="Sam", last_name="Scoped", email="sam@example.com")
    scope_admin(app, sam, [lisbon])
    make.assignment(make.user(location_id=lisbon.id), course, due=date.today() - timedelta(1))
    make.assignment(make.user(location_id=madrid.id), course, due=date.today() - timedelta(1))
    assert admin_client.post("/admin/dashboard/figures").status_code == 303
    assert overdue_tile(admin_client.get("/admin/dashboard").text) == 2

    sam_client = app.test_client()
    login(sam_client, "sam@example.com")
    page = sam_client.get("/admin/dashboard").text
    assert 'id="figures-missing"' in page and 'id="dash-overdue"' not in page
    assert sam_client.post("/admin/dashboard/figures").status_code == 303
    page = sam_client.get("/admin/dashboard").text
    assert overdue_tile(page) == 1 and "Madrid" not in page
    assert figure(page, "location", lisbon.id, "overdue") == 1
    # A new scope is a new audience: the old scope's snapshot is never shown for it.
    scope_admin(app, sam, [madrid])
    assert 'id="figures-missing"' in sam_client.get("/admin/dashboard").text


def test_the_snapshot_holds_what_the_live_page_counts(app, admin_client, make):
    from lmsweb import figures
    from lmsweb.seed import seed_demo

    with app.app_context():
        seed_demo(300)
        db.session.commit()
    live = admin_client.get("/admin/dashboard").text
    app.config["FIGURES_LIVE_MAX_USERS"] = 0
    with app.app_context():
        figures.refresh(None)
        db.session.commit()
    kept = admin_client.get("/admin/dashboard").text

    def numbers(html):
        start = html.index('id="dash-users"')
        return re.findall(r">(\d+)<", html[start : html.index('id="records-title"')])

    assert numbers(kept) == numbers(live) and len(numbers(live)) > 50
    with app.app_context():
        seed_demo(10)  # written around the domain: the snapshots go
        db.session.commit()
    assert 'id="figures-missing"' in admin_client.get("/admin/dashboard").text


def test_one_read_counts_what_the_users_list_conditions_define(app, make):
    """figures.compute_all (one merged read of users, groups and records) against
    compliance's SQL, per figure and audience, on data with every case: archived users and
    records, renewals, expiries, waiting enrolments, managers, people without training."""
    from lmsweb import compliance, figures, reports, scope
    from lmsweb.models import Scope, WaitingEnrolment

    today = date.today()
    lisbon, oslo = make.location("Lisbon"), make.location("Oslo")
    nurses, cooks = make.group("Nurses"), make.group("Cooks")
    boss = make.user(first_name="Maria", last_name="Boss", location_id=oslo.id)
    safe, fire = make.course("SAFE", seats=50), make.course("FIRE", seats=50)
    people = []
    for n in range(12):
        people.append(
            make.user(
                location_id=(lisbon, oslo, None)[n % 3].id if n % 3 < 2 else None,
                groups=[(nurses,), (cooks,), (nurses, cooks), ()][n % 4],
                manager_id=boss.id if n % 2 else None,
            )
        )
    make.assignment(people[0], safe, due=today - timedelta(days=1))
    make.assignment(people[1], safe, state="completed")
    old = make.assignment(people[2], safe, state="completed")
    make.assignment(people[2], fire, due=today + timedelta(days=3))
    make.assignment(people[3], safe, state="in_progress", due=today)
    gone = make.assignment(people[4], safe, due=today - timedelta(days=5))
    make.assignment(people[5], fire, state="completed")
    make.assignment(people[11], fire, due=today - timedelta(days=5))
    renewed = make.assignment(people[6], safe, state="completed")
    with app.app_context():
        db.session.get(CourseAssignment, gone.id).archived_at = datetime.now()
        db.session.get(User, people[11].id).status = "archived"  # a current record stays
        db.session.execute(
            sa.update(CourseAssignment)
            .where(CourseAssignment.id.in_([old.id, renewed.id]))
            .values(expires_on=today - timedelta(days=1))
        )
        renewal = CourseAssignment(
            user_id=people[6].id, course_id=fire.id, renewal_of_id=renewed.id, due_date=today
        )
        db.session.add(renewal)
        db.session.add(WaitingEnrolment(user_id=people[7].id, course_id=fire.id))
        db.session.add(WaitingEnrolment(user_id=people[11].id, course_id=fire.id))
        for s in ([lisbon], [], []), ([], [cooks], []), ([oslo], [nurses], []):
            db.session.add(Scope(locations=s[0], groups=s[1]))
        db.session.commit()
        rules = {None: None} | {
            sid: scope.rule_for(sid) for sid in db.session.scalars(sa.select(Scope.id))
        }
        counted = figures.compute_all(rules, today)
        for key, rule in rules.items():
            got = counted[key]
            assert got.users == reports.users_by_status(rule), key
            assert got.courses == reports.course_counts(today, rule), key
            assert got.cycle == {k: compliance.people(k, today, rule) for k in figures.CYCLE}
            expected = compliance.all_figures(today, rule)
            for dimension, rows in expected.items():
                assert {(r.id, r.name, r.people, tuple(r.counts.items())) for r in rows} == {
                    (r.id, r.name, r.people, tuple(r.counts.items())) for r in got.by[dimension]
                }, (key, dimension)
        # Expired: both expiries (the renewal of one is not completed yet).
        assert counted[None].cycle == {"waiting": 1, "renewal_due": 1, "expired": 2}
        assert any(r.counts["expired"] for r in counted[None].by["location"])


def test_past_the_request_limit_refresh_asks_the_worker(large, app, admin_client, make, runner):
    app.config["FIGURES_RECOUNT_MAX_USERS"] = 0
    oslo = make.location("Oslo")
    course = make.course("SAFE")
    make.assignment(make.user(location_id=oslo.id), course, due=date.today() - timedelta(1))
    assert admin_client.post("/admin/dashboard/figures").status_code == 303
    assert 'id="figures-missing"' in admin_client.get("/admin/dashboard").text  # not counted
    assert runner.invoke(args=["lms", "worker", "--once"]).exit_code == 0
    assert figure(admin_client.get("/admin/dashboard").text, "location", oslo.id, "overdue") == 1
    make.assignment(make.user(location_id=oslo.id), course, due=date.today() - timedelta(1))
    assert admin_client.post("/admin/dashboard/figures").status_code == 303
    page = admin_client.get("/admin/dashboard").text
    assert 'id="figures-requested"' in page and figure(page, "location", oslo.id, "overdue") == 1
    result = runner.invoke(args=["lms", "worker", "--once"])
    assert "Dashboard figures recounted for 1 audiences" in result.output
    page = admin_client.get("/admin/dashboard").text
    assert (
        'id="figures-requested"' not in page and figure(page, "location", oslo.id, "overdue") == 2
    )


# --- many managers: the figures name a shortlist (compliance.SHORTLIST) ----------------------


def _teams(make, sizes: dict[str, tuple[int, int]], today: date | None = None) -> dict[str, User]:
    """A manager per name, with (overdue, on time) reports who each have one record."""
    course, today = make.course("TEAM"), today or date.today()
    bosses = {}
    for name, (late, fine) in sizes.items():
        boss = bosses[name] = make.user(first_name=name, last_name="Lead")
        for n in range(late + fine):
            due = today + timedelta(days=-3 if n < late else 3)
            make.assignment(make.user(manager_id=boss.id), course, due=due)
    return bosses


def _manager_rows(html: str) -> list[int]:
    table = html[html.index('id="dash-compliance-manager"') :]
    table = table[: table.index("</table>")]
    return [int(i) for i in re.findall(r'<tr id="compliance-manager-(\d+)"', table)]


@pytest.mark.parametrize("snapshot", [False, True], ids=["live", "snapshot"])
def test_past_the_shortlist_the_figures_name_those_most_overdue(
    app, admin_client, make, monkeypatch, snapshot
):
    from lmsweb import compliance

    monkeypatch.setitem(compliance.SHORTLIST, "manager", 3)
    teams = _teams(make, {"Ann": (0, 2), "Bo": (2, 0), "Cy": (1, 1), "Di": (0, 1), "Ed": (3, 0)})
    if snapshot:
        app.config["FIGURES_LIVE_MAX_USERS"] = 0
        assert admin_client.post("/admin/dashboard/figures").status_code == 303
    page = admin_client.get("/admin/dashboard").text
    assert _manager_rows(page) == [teams["Ed"].id, teams["Bo"].id, teams["Cy"].id]
    assert "The 3 of 5 managers whose people are most overdue." in page
    assert figure(page, "manager", teams["Ed"].id, "overdue") == 3
    # Fewer than the shortlist: every one, by name, and nothing said.
    monkeypatch.setitem(compliance.SHORTLIST, "manager", 5)
    if snapshot:
        assert admin_client.post("/admin/dashboard/figures").status_code == 303
    page = admin_client.get("/admin/dashboard").text
    assert _manager_rows(page) == [teams[n].id for n in ("Ann", "Bo", "Cy", "Di", "Ed")]
    assert "whose people are most overdue" not in page


def test_the_digest_names_the_same_shortlist(app, admin, admin_client, make, runner, monkeypatch):
    from lmsweb import compliance

    monkeypatch.setitem(compliance.SHORTLIST, "manager", 2)
    _teams(make, {"Ann": (0, 2), "Bo": (2, 0), "Cy": (1, 1)}, today=date(2026, 3, 2))
    assert admin_client.post("/admin/dashboard/digest", data={"digest": "on"}).status_code == 303
    with at(date(2026, 3, 2)):
        result = runner.invoke(args=["lms", "worker", "--once", "--now", "2026-03-02T07:00"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        text, html = db.session.execute(
            sa.select(OutboundEmail.body_text, OutboundEmail.body_html).where(
                OutboundEmail.kind == "digest"
            )
        ).one()
    assert "By manager (the 2 of 3 managers whose people are most overdue):" in text
    assert "Bo Lead (2)" in text and "Cy Lead (2)" in text and "Ann Lead" not in text
    assert "The 2 of 3 managers whose people are most overdue." in html
