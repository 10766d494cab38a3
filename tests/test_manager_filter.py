"""The Users list's Manager filter: typed as an email, with suggestions as one types,
never a select of every manager (8,000 options and 420 KB a page at 100,000 users)."""

from __future__ import annotations

import re

from lmsweb.extensions import db
from tests.conftest import HX
from tests.test_export import download, rows_openpyxl
from tests.test_query_plans import captured
from tests.test_scopes import sam_client, world  # noqa: F401 (fixtures)

SUGGEST = "/admin/users/managers?manager="


def _field(page: str) -> str:
    return re.search(r'<input type="text" id="users-manager"[^>]*>', page).group(0)


def _chips(page: str) -> str:
    return page[page.index('aria-label="Active filters"') :][:2000]


def _boss(make):
    boss = make.user(first_name="Bea", last_name="Boss", email="bea.boss@example.com")
    make.user(first_name="Rita", last_name="Report", manager_id=boss.id)
    make.user(first_name="Ravi", last_name="Report", manager_id=boss.id)
    make.user(first_name="Nobody", last_name="Else")
    return boss


def test_the_page_holds_no_list_of_managers_however_many(admin_client, make):
    _boss(make)
    few = admin_client.get("/admin/users").text
    for n in range(30):
        manager = make.user(first_name=f"Mana{n}", last_name="Ger", email=f"m{n}@example.com")
        make.user(manager_id=manager.id)
    many = admin_client.get("/admin/users").text
    assert many.count("<option") == few.count("<option")
    assert 'list="users-manager-options"' in many
    assert '<datalist id="users-manager-options"></datalist>' in many


def test_a_manager_by_email_lists_their_reports(admin_client, make):
    boss = _boss(make)
    page = admin_client.get("/admin/users?manager=Bea.Boss@Example.com").text
    assert "Report, Rita</a>" in page and "Report, Ravi</a>" in page
    assert "Else, Nobody</a>" not in page
    assert 'id="users-count"' in page and "2 users match these filters" in page
    assert "Bea Boss" in _chips(page)
    assert 'value="bea.boss@example.com"' in _field(page)
    # A link by id (a user's page: "Users whose manager is …") shows the email too.
    linked = admin_client.get(f"/admin/users?manager={boss.id}").text
    assert "Report, Rita</a>" in linked and "Else, Nobody</a>" not in linked
    assert "Bea Boss" in _chips(linked)
    assert 'value="bea.boss@example.com"' in _field(linked)


def test_an_email_nobody_has_says_so_and_lists_no_one(admin_client, make):
    _boss(make)
    page = admin_client.get("/admin/users?manager=nobody@example.com").text
    assert "no user has the email “nobody@example.com”" in _chips(page)
    assert "Report, Rita</a>" not in page and "Else, Nobody</a>" not in page
    assert 'value="nobody@example.com"' in _field(page)
    # Its chip removes it, and the other filters stay.
    page = admin_client.get("/admin/users?manager=nobody@example.com&role=learner").text
    chip = re.search(r'<a class="chip filter-chip" href="([^"]*)"[^>]*><span[^>]*>Manager:', page)
    assert chip.group(1) == "/admin/users?role=learner"


def test_the_export_follows_a_manager_by_email(admin_client, make):
    _boss(make)
    data = download(admin_client, "?manager=bea.boss@example.com").data
    _, rows = rows_openpyxl(data)
    assert sorted(r[0] for r in rows[1:]) == ["Ravi", "Rita"]


def test_suggestions_are_managers_matching_what_is_typed(app, admin_client, make):
    _boss(make)
    for n in range(12):
        manager = make.user(first_name=f"Mia{n:02d}", last_name="Lead", email=f"mia{n}@example.com")
        make.user(manager_id=manager.id)
    answers = []
    with app.app_context():
        seen = captured(app, lambda: answers.append(admin_client.get(SUGGEST + "bo", headers=HX)))
    (typed,) = answers
    assert typed.status_code == 200
    assert typed.text == '<option value="bea.boss@example.com">Bea Boss</option>'

    # Every word starts a name or the email; a name that manages no one is never offered.
    def offered(typed: str) -> str:
        return admin_client.get(SUGGEST + typed, headers=HX).text

    assert "Bea Boss" in offered("bea+bo")
    assert offered("else") == "" and offered("%40example") == ""
    # Nothing typed (the field focused): the first ten by name.
    first = offered("")
    assert first.count("<option") == 10
    assert first.startswith('<option value="bea.boss@example.com">Bea Boss</option>')
    assert "Mia08 Lead" in first and "Mia09" not in first
    # The signed-in user, then the suggestions: one statement.
    assert len([s for s, _ in seen if s != "BEGIN"]) == 2, seen


def test_a_scoped_administrator_is_offered_managers_of_their_scope_only(app, world, sam_client):  # noqa: F811
    # Otto (out of scope) manages Lena (in scope); Ada manages only Otto.
    with app.app_context():
        from lmsweb.models import User

        db.session.get(User, world.lena.id).manager_id = world.otto.id
        db.session.get(User, world.otto.id).manager_id = world.ada.id
        db.session.commit()
    offered = sam_client.get("/admin/users/managers", headers=HX).text
    assert "otto@example.com" in offered and "ada@example.com" not in offered
    by_ada = sam_client.get("/admin/users?manager=ada@example.com", headers=HX).text
    assert "no user has the email “ada@example.com”" in by_ada and "Otto" not in by_ada
    by_otto = sam_client.get("/admin/users?manager=otto@example.com", headers=HX).text
    assert "lena@example.com" in by_otto and "Otto Outsider" in by_otto


def test_each_manager_chip_removes_only_its_own(admin_client, make):
    boss = _boss(make)
    chief = make.user(first_name="Carl", last_name="Chief", email="carl@example.com")
    make.user(first_name="Cora", last_name="Report", manager_id=chief.id)
    page = admin_client.get(f"/admin/users?manager={boss.id}&manager=carl@example.com").text
    assert "3 users match these filters" in page
    chip = r'<a class="chip filter-chip" href="([^"]*)"[^>]*><span[^>]*>Manager:</span> ([^<]*) <'
    chips = {label: url.replace("&amp;", "&") for url, label in re.findall(chip, page)}
    assert chips == {
        "Bea Boss": "/admin/users?manager=carl@example.com",
        "Carl Chief": f"/admin/users?manager={boss.id}",
    }


def test_without_javascript_the_suggestions_are_a_page_of_links(admin_client, make):
    _boss(make)
    panel = admin_client.get("/admin/users").text
    assert 'Type a name or an email, or <a href="/admin/users/managers">find a manager</a>' in panel
    page = admin_client.get("/admin/users/managers?manager=boss").text
    assert "<title>Find a manager" in page and 'value="boss"' in page
    assert '<a href="/admin/users?manager=bea.boss@example.com">Bea Boss</a>' in page
    none = admin_client.get("/admin/users/managers?manager=else").text
    assert "No one named or emailed “else” manages anyone you can see." in none


def test_a_typed_name_of_one_manager_is_that_manager(admin_client, make):
    _boss(make)
    chief = make.user(first_name="Carl", last_name="Chief", email="carl@example.com")
    make.user(first_name="Cora", last_name="Report", manager_id=chief.id)
    response = admin_client.get("/admin/users?manager=Bea+Boss", headers=HX)
    assert "2 users match these filters" in response.text
    assert "Bea Boss" in _chips(response.text)
    assert response.headers["HX-Push-Url"] == "/admin/users?manager=bea.boss@example.com"
    page = admin_client.get("/admin/users?manager=bea").text
    assert 'value="bea.boss@example.com"' in _field(page) and "Report, Rita</a>" in page
    # Several, or none: the chip says so, and no one is listed.
    both = admin_client.get("/admin/users?manager=report", headers=HX).text
    assert "no manager matches “report”" in _chips(both) and "Report, Rita</a>" not in both
    make.user(first_name="Bella", last_name="Boss", email="bella@example.com")  # no reports
    make.user(manager_id=make.user(first_name="Bert", last_name="Boss").id)
    many = admin_client.get("/admin/users?manager=boss", headers=HX).text
    assert "“boss” matches 2 managers: pick one" in _chips(many)
    assert "Report, Rita</a>" not in many
